"""Read and write the NeurIPS 2021 multimodal challenge's match-modality file format."""

from scmatch._errors import InvalidFileError, OutputIsInputError
from scmatch.io._challenge import read_match_modality
from scmatch.io._prediction import read_prediction, write_prediction

__all__ = ["InvalidFileError", "OutputIsInputError", "read_match_modality", "read_prediction", "write_prediction"]
