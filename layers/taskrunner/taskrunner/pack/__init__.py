"""Task Pack manifests: models, loading with positioned errors, and templating."""

from taskrunner.pack.errors import InputsError, ManifestError, Problem
from taskrunner.pack.loader import LoadedPack, load_pack
from taskrunner.pack.models import PackManifest

__all__ = ["InputsError", "LoadedPack", "ManifestError", "PackManifest", "Problem", "load_pack"]
