"""The guide's two real jobs, as the answers that bake them: Thales (one GPU step on a CUDA base,
a dataset on NFS) and Air Liquide (prepare -> train -> predict, MLflow's credentials as a Secret)."""

from support.engines import CUDA_BASE_IMAGE as CUDA_BASE  # the base image the prompt suggests for GPU code

DATASET = "/nfsdata/EC1/UC_Thales_Aerial_Photograph_Interpretation/Dataset/XVIEW_Confiance"

GUIDE_JOBS = {
    "thales": {
        "project_name": "Thales Aerial Photograph Interpretation",
        "use_nfs": True,
        "use_gpu": True,
        "env_vars": f"CONFIANCE_BDD={DATASET}",
        "base_image": CUDA_BASE,
    },
    "air-liquide": {
        "project_name": "Air Liquide TimeSeries",
        "steps": "prepare,train,predict",
        "use_gpu": True,
        "gpu_steps": "train",
        "step_resources": "train: memory=8Gi/16Gi cpu=2/4",
        "secrets": "mlflow-credentials",
    },
}

# A step's command that proves a secret reached the process without showing it: its hash.
SHOW_SECRET = (
    'python -c "import hashlib, os; '
    "print('password sha256', hashlib.sha256(os.environ['MLFLOW_TRACKING_PASSWORD'].encode()).hexdigest())\""
)
