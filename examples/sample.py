import json
from pathlib import Path


def load_config(path):
    """Read a JSON config file and return it as a dict."""
    with open(path) as f:
        

def save_config(path, config):
    Path(path).write_text(json.dumps(config, indent=2))
