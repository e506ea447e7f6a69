"""``python -m trainer CONFIG`` (works under ``accelerate launch``): train from a TOML config."""

import sys

from trainer.commands.train import train

sys.exit(train.main(standalone_mode=True))
