;;; ghostline-lsp-mode.el --- Ghostline ghost text through lsp-mode  -*- lexical-binding: t -*-
;; Needs lsp-mode with `lsp-inline-completion' (in MELPA snapshots since 2024-12, which need Emacs 29; no
;; tagged release has it yet: Debian's lsp-mode 8.0.0 does not). Ghostline runs next to your other servers as
;; an add-on; TAB accepts the ghost text. Set the path of Ghostline's Python below.
(defvar ghostline-python "/path/to/ghostline/.venv/bin/python")

(with-eval-after-load 'lsp-mode
  (require 'lsp-inline-completion)
  (lsp-register-client
   (make-lsp-client
    :new-connection (lsp-stdio-connection (lambda () (list ghostline-python "-m" "server")))
    :activation-fn (lsp-activate-on "python" "javascript" "typescript" "go" "rust")
    :server-id 'ghostline
    :add-on? t
    :initialization-options (lambda () '(:maxTokens 64 :multiline "auto"))))
  (setq lsp-inline-completion-idle-delay 0.3)
  (add-hook 'lsp-mode-hook #'lsp-inline-completion-mode)
  (define-key lsp-inline-completion-active-map (kbd "TAB") #'lsp-inline-completion-accept))
;;; ghostline-lsp-mode.el ends here
