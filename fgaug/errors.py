"""The one base of the errors a user causes: :class:`FgaugError`.

Every error fgaug raises for a wrong option, a bad input file, a checkpoint that does not fit or a
device the machine lacks derives from it, so the CLI prints exactly these as one line (and a bug,
say a ``ValueError`` from inside numpy or torch, keeps its traceback), and a Python caller can
catch them all at once:

    FgaugError
    ├── UsageError           fgaug.usage               an option, or combination, that cannot work (exit 2)
    ├── ConfigError          fgaug.flow.config         a preset or model configuration value
    ├── SamplingError        fgaug.flow.fullglow       sampling settings this model cannot honour
    ├── DataError            fgaug.data.io             a missing, unreadable or wrong input file
    │   └── OutputConflictError  fgaug.data.record     an output tree made with other settings
    ├── CheckpointError      fgaug.training.checkpoint a missing, corrupt or foreign checkpoint
    ├── RuntimeChoiceError   fgaug.runtime             a device or precision this machine cannot provide
    └── TrainingStoppedError fgaug.training.options    a run stopped early (its ``reason`` says why)

Each is also the built-in exception it was before this base existed (``ValueError``, or
``RuntimeError`` for a stopped run), so ``except ValueError`` keeps catching them.

This module imports nothing: it ranks below every layer, the self-contained flow included, and is
the one module outside ``fgaug/flow/`` that the flow may import (see ``tests/test_layering.py``).
"""


class FgaugError(Exception):
    """An error the user caused (an option, an input file, a machine), not a bug: its message is one
    line that says what is wrong and, where it can, what to do."""
