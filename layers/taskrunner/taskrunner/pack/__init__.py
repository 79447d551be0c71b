"""Task Pack manifests: models, loading with positioned errors, and templating."""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskrunner.lazy import lazy_exports

if TYPE_CHECKING:
    from taskrunner.pack.errors import InputsError, ManifestError, Problem
    from taskrunner.pack.loader import LoadedPack, load_pack
    from taskrunner.pack.models import PackManifest

__all__ = [
    "InputsError",
    "LoadedPack",
    "ManifestError",
    "PackManifest",
    "Problem",
    "load_pack",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "InputsError": "errors",
        "LoadedPack": "loader",
        "ManifestError": "errors",
        "PackManifest": "models",
        "Problem": "errors",
        "load_pack": "loader",
    },
)
