"""Where the images come from: the Leeds archive (fetched, verified, safely extracted) or a
synthetic butterfly set, both written in one on-disk layout, and the train/validation split; then
the one preprocessing (`preprocessing`), the augmentation pipelines (`transforms`; their names and
settings, plain Python, in `augment_settings`) and the torch datasets (`datasets`), imported from
their modules."""

from equiseg.data.archive import ArchiveLimits, ArchiveSource, UnsafeArchiveError, check_zip
from equiseg.data.fetch import FetchError, fetch_archive, verify_checksum
from equiseg.data.layout import (
    image_path,
    list_pair_ids,
    mask_path,
    read_pair,
    species_of,
    write_palette_mask,
)
from equiseg.data.leeds import extract_leeds, find_leeds_pairs
from equiseg.data.prepare import SPECIES_KEYS, prepare_leeds, prepare_synthetic, summarise
from equiseg.data.split import assign_splits, split_counts, split_manifest
from equiseg.data.synthetic import generate_synthetic, render_butterfly, species_styles
from equiseg.image_files import DataError, read_leeds_mask, read_rgb

__all__ = [
    "SPECIES_KEYS",
    "ArchiveLimits",
    "ArchiveSource",
    "DataError",
    "FetchError",
    "UnsafeArchiveError",
    "assign_splits",
    "check_zip",
    "extract_leeds",
    "fetch_archive",
    "find_leeds_pairs",
    "generate_synthetic",
    "image_path",
    "list_pair_ids",
    "mask_path",
    "prepare_leeds",
    "prepare_synthetic",
    "read_leeds_mask",
    "read_pair",
    "read_rgb",
    "render_butterfly",
    "species_of",
    "species_styles",
    "split_counts",
    "split_manifest",
    "summarise",
    "verify_checksum",
    "write_palette_mask",
]
