"""A real Emacs (batch) with eglot and editors/emacs/ghostline-eglot.el: after a partly typed word,
`completion-at-point` completes the whole suggestion (eglot keeps only items whose filter text starts with the
typed word)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_helpers import EDITOR_DOC as PY
from lsp_helpers import EDITOR_HOLE as HOLE

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parent.parent
EMACS = shutil.which("emacs")

SCRIPT = r'''
(require 'eglot)
(load %(config)s)
(setq ghostline-python %(python)s)
(setq eglot-server-programs
      `((python-mode . (,ghostline-python "-m" "server"
                        :initializationOptions (:maxTokens 48 :multiline "never" :filterAggressiveness "off")))))
(find-file %(file)s)
(python-mode)
(apply #'eglot (eglot--guess-contact))
(let ((server (eglot-current-server)) (state nil) (n 0))
  (while (and (not (equal state "ready")) (< n 900))
    (setq state (plist-get (jsonrpc-request server :ghostline/stats nil) :state))
    (sleep-for 0.2)
    (setq n (1+ n)))
  (goto-char (point-min))
  (forward-line (1- %(hole)d))
  (end-of-line)
  (let* ((items (jsonrpc-request server :textDocument/completion (eglot--TextDocumentPositionParams)))
         (text (plist-get (plist-get (aref (plist-get items :items) 0) :textEdit) :newText)))
    (insert (substring text 0 2))
    (completion-at-point)
    (let ((line (buffer-substring (line-beginning-position) (line-end-position)))
          (accepted nil) (n 0))
      (while (and (not accepted) (< n 50))  ; didChange goes out after a short idle time
        (sleep-for 0.1)
        (setq accepted (plist-get (plist-get (jsonrpc-request server :ghostline/stats nil) :outcomes) :accepted))
        (setq n (1+ n)))
      (with-temp-file %(out)s
        (insert (json-encode (list (cons "state" state) (cons "suggestion" text) (cons "line" line)
                                   (cons "accepted" (or accepted 0)))))))))
(kill-emacs 0)
'''


def test_eglot_completes_the_whole_suggestion_after_a_typed_word(tmp_path):
    if EMACS is None or subprocess.run([EMACS, "--batch", "--eval", "(require 'eglot)"],
                                       capture_output=True).returncode != 0:
        pytest.skip("no Emacs with eglot (Debian: apt-get install emacs-nox elpa-eglot; .ci/run does)")
    (tmp_path / ".git").mkdir()
    src = tmp_path / "lines.py"
    src.write_text(PY)
    out = tmp_path / "out.json"
    script = tmp_path / "test.el"
    script.write_text(SCRIPT % {"config": json.dumps(str(ROOT / "editors" / "emacs" / "ghostline-eglot.el")),
                                "python": json.dumps(sys.executable), "file": json.dumps(str(src)),
                                "hole": HOLE, "out": json.dumps(str(out))})
    env = {**os.environ, "GHOSTLINE_DATA_DIR": str(tmp_path / "data"),
           "GHOSTLINE_CONFIG_DIR": str(tmp_path / "config")}
    run = subprocess.run([EMACS, "--batch", "-l", str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.exists(), run.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got["state"] == "ready" and len(got["suggestion"].strip()) > 2
    assert got["line"] == " " * 8 + got["suggestion"].split("\n")[0]  # all of it, not "No match"
    # eglot never runs the item's command: the edit that inserted the item is reported as its accept
    assert got["accepted"] == 1
