"""SRC given as a hub dataset id: its parquet shards are downloaded (when online) into the Hugging Face cache.

``HuggingFaceM4/the_cauldron`` holds one folder per source dataset; only the converter's config is fetched.
"""

from __future__ import annotations

import re
from pathlib import Path

from phi3v_data.errors import MissingDependencyError, SourceLayoutError

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
CAULDRON = "HuggingFaceM4/the_cauldron"
CAULDRON_CONFIGS = {"docvqa": "docvqa", "hateful-memes": "hateful_memes", "nlvr2": "nlvr2"}


def is_hub_id(src: Path) -> bool:
    """A SRC that names a hub dataset rather than a local path (``owner/name`` and nothing on disk there)."""
    return not src.exists() and HUB_ID.fullmatch(src.as_posix()) is not None


def download_hint(repo_id: str) -> str:
    folder = f"raw/{repo_id.split('/')[-1]}"
    return f"download it with `hf download --repo-type dataset {repo_id} --local-dir {folder}` and pass {folder} as SRC"


def fetch_hub_dataset(repo_id: str, converter: str) -> Path:
    """The local folder of ``repo_id``'s parquet shards (the converter's config for the_cauldron)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise MissingDependencyError(
            f"reading {repo_id} from the hub needs huggingface_hub (pip install 'phi3v[hub]'); "
            f"or {download_hint(repo_id)}"
        ) from exc
    config = CAULDRON_CONFIGS.get(converter) if repo_id == CAULDRON else None
    if repo_id == CAULDRON and config is None:
        raise SourceLayoutError(f"the_cauldron has no config for the {converter} converter")
    patterns = [f"{config}/*.parquet"] if config else ["*.parquet"]
    try:
        folder = Path(snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated repo: the hub client raises many types
        raise SourceLayoutError(
            f"{repo_id} is not a local folder, and could not be downloaded from the hub ({exc}); "
            f"{download_hint(repo_id)}"
        ) from exc
    return folder / config if config else folder
