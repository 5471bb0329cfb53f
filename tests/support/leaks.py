"""Where a secret could leak, and a search of a built image for it."""

import base64
import tarfile
import urllib.parse

from support.engines import docker


def secret_forms(*secrets, basic_auth=()):
    """Each secret as it could leak: plain, percent-encoded (pip URL, as urllib and as the CI jobs
    encode it: every byte), base64; and each (user, password) of `basic_auth` as an HTTP Basic
    header carries it (base64 of user:password, which does not contain the password's own base64)."""
    forms = set()
    for secret in secrets:
        every_byte = "".join(f"%{byte:02x}" for byte in secret.encode())
        forms |= {secret, urllib.parse.quote(secret, safe=""), every_byte, base64.b64encode(secret.encode()).decode()}
    forms |= {base64.b64encode(f"{user}:{password}".encode()).decode() for user, password in basic_auth}
    return forms


def image_leaks(image, secrets, folder):
    """Where a secret appears in the image: its history, its config, or any file of any layer."""
    places = []
    history = docker("history", "--no-trunc", image).stdout
    config = docker("image", "inspect", image).stdout
    archive = folder / "image.tar"
    docker("image", "save", "-o", archive, image)
    blobs = []
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if member.isfile() and member.name.endswith("layer.tar"):
                with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                    blobs += [
                        (f"{member.name}:{m.name}", layer.extractfile(m).read())
                        for m in layer.getmembers()
                        if m.isfile()
                    ]
    for secret in secrets:
        places += [f"history has {secret!r}"] if secret in history else []
        places += [f"config has {secret!r}"] if secret in config else []
        places += [f"{name} has {secret!r}" for name, data in blobs if secret.encode() in data]
    return places
