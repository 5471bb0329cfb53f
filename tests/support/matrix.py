"""The option matrix: the answers worth baking, combined so that every value is baked at least once."""

import itertools
from dataclasses import dataclass

from confiance_job.rules import AIRFLOW_PROVIDERS

from support.template import DEFAULTS, answers_with_defaults

# The options that change what is generated, and the values worth baking. Tests select combinations
# by these values, e.g. find(steps="several", gpu_steps="last"). Each value has its id in test names
# and its answers ("{last}" stands for the combination's last step); answers left out keep
# cookiecutter.json's defaults, which are also what tests expect of them. Each option's first value is
# its default, so the first combination is what `cookiecutter --no-input` bakes.
#
# These meet in the same pod: the NFS volume and a GPU step's /dev/shm are merged, the GPU settings go
# to the GPU steps only, and a step's memory limit sizes its /dev/shm. Every combination is baked.
POD_OPTIONS = {
    "steps": {
        "one": ("1step", {"steps": "run"}),
        "several": ("3steps", {"steps": "prepare,train,evaluate"}),
    },
    "use_nfs": {True: ("nfs", {"use_nfs": True}), False: ("nonfs", {"use_nfs": False})},
    "step_resources": {
        "none": ("", {"step_resources": ""}),
        "last": ("bigmem_last", {"step_resources": "{last}: memory=8Gi/16Gi"}),
    },
    "gpu_steps": {
        "none": ("cpu", {"use_gpu": False}),
        "all": ("gpu", {"use_gpu": True}),  # cookiecutter.json's gpu_steps: every step
        "last": ("gpu_last", {"use_gpu": True, "gpu_steps": "{last}"}),
    },
}
# These each change a place of their own (the Dockerfile, the schedule, the env, the requirements):
# their values are cycled through the combinations above rather than multiplied, so each value is
# baked at least once and a new option adds no bake. Ids show them only where they are not the default.
CYCLED_OPTIONS = {
    "extra_ca_certificates": {
        False: ("nocerts", {"extra_ca_certificates": False}),
        True: ("certs", {"extra_ca_certificates": True}),
    },
    "schedule": {"none": ("manual", {"schedule": "none"}), "cron": ("cron", {"schedule": "0 6 * * 1"})},
    "secrets": {"none": ("nosecrets", {"secrets": ""}), "some": ("secrets", {"secrets": "mlflow-credentials"})},
    "env_vars": {"none": ("noenv", {"env_vars": ""}), "some": ("env", {"env_vars": "DATASET=/nfsdata/team/data"})},
    "mlflow_tracking_uri": {
        "none": ("nomlflow", {"mlflow_tracking_uri": ""}),
        "some": ("mlflow", {"mlflow_tracking_uri": "https://mlflow.example.org"}),
    },
    "notify": {
        "none": ("quiet", {"notify": "none"}),
        "email": ("mail", {"notify": "team-ml@example.org,jane.doe@example.org"}),
        "webhook": ("webhook", {"notify": "webhook"}),
    },
    "airflow_version": {
        version: (f"airflow{version}", {"airflow_version": version})
        for version in sorted(AIRFLOW_PROVIDERS, key=lambda version: version != DEFAULTS["airflow_version"])
    },
    "base_image": {
        "python": ("python", {}),
        "cuda": ("cuda", {"base_image": "nvidia/cuda:12.6.3-runtime-ubuntu24.04"}),
    },
}
OPTIONS = {**POD_OPTIONS, **CYCLED_OPTIONS}


@dataclass(frozen=True, eq=False)
class Combination:
    """One job repo of the matrix: the option values that describe it, and the answers that bake it."""

    id: str
    properties: dict  # {option: value}, as in OPTIONS
    answers: dict  # what the bake passes to cookiecutter
    context: dict  # every answer cookiecutter uses: the answers above and cookiecutter.json's defaults

    def has(self, name, value):
        """Whether an option (or else an answer, e.g. use_gpu) has this value."""
        return (self.properties[name] if name in self.properties else self.context[name]) == value

    @property
    def steps(self):
        return self.context["steps"].split(",")

    @property
    def gpu_steps(self):
        return self.context["gpu_steps"].split(",") if self.context["use_gpu"] else []


def pod_shapes():
    """Every combination of POD_OPTIONS' values, as {option: value}, each baking different files."""
    for values in itertools.product(*POD_OPTIONS.values()):
        shape = dict(zip(POD_OPTIONS, values, strict=True))
        if not (shape["steps"] == "one" and shape["gpu_steps"] == "last"):  # one step: its last is every step
            yield shape


def answers_of(properties):
    """The answers these option values give, with the combination's last step in place of "{last}"."""
    answers = {
        name: answer for option, value in properties.items() for name, answer in OPTIONS[option][value][1].items()
    }
    last_step = answers["steps"].split(",")[-1]
    return {
        name: answer.replace("{last}", last_step) if isinstance(answer, str) else answer
        for name, answer in answers.items()
    }


def id_of(properties):
    """E.g. '3steps-nonfs-bigmem_last-gpu_last-certs-cron': the pod shape, then the cycled values but defaults."""
    parts = []
    for option, value in properties.items():
        value_id, answers = OPTIONS[option][value]
        if option in POD_OPTIONS or any(DEFAULTS[name] != answer for name, answer in answers.items()):
            parts.append(value_id)
    return "-".join(filter(None, parts))


def combination(properties):
    answers = answers_of(properties)
    return Combination(id_of(properties), properties, answers, answers_with_defaults(answers))


def combinations():
    """The pod shapes, each with the next value of every cycled option, as cookiecutter-data-science does."""
    cycled = {option: itertools.cycle(values) for option, values in CYCLED_OPTIONS.items()}
    return [
        combination({**shape, **{option: next(values) for option, values in cycled.items()}}) for shape in pod_shapes()
    ]


COMBINATIONS = combinations()


def find(**wanted):
    """The first combination with these option values or answers, e.g. find(steps="several", use_gpu=True)."""
    for combo in COMBINATIONS:
        if all(combo.has(name, value) for name, value in wanted.items()):
            return combo
    raise LookupError(f"no combination has {wanted}; the matrix: {[combo.id for combo in COMBINATIONS]}")


def fewest_covering_every_value(combos):
    """The fewest of these combinations that together have every value of every option (the first such set)."""
    every_value = {(option, value) for option, values in OPTIONS.items() for value in values}
    missing = every_value - {item for combo in combos for item in combo.properties.items()}
    if missing:
        raise LookupError(f"no combination has {sorted(missing, key=str)}")
    for size in range(1, len(combos) + 1):
        for chosen in itertools.combinations(combos, size):
            if every_value <= {item for combo in chosen for item in combo.properties.items()}:
                return list(chosen)
