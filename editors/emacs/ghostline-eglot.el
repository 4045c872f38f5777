;;; ghostline-eglot.el --- Ghostline through eglot (Emacs 28+, eglot 1.9+)  -*- lexical-binding: t -*-
;; Eglot runs one server per buffer, so this replaces your Python server in these modes. The suggestion
;; arrives through `completion-at-point' (M-TAB, or Corfu / Company): the item replaces the word you typed,
;; so it survives eglot's filtering while you type on. Set the path of Ghostline's Python below.
(defvar ghostline-python "/path/to/ghostline/.venv/bin/python")

(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               `((python-mode python-ts-mode js-mode js-ts-mode typescript-ts-mode)
                 . (,ghostline-python "-m" "server"
                    :initializationOptions (:maxTokens 48 :multiline "never")))))
;;; ghostline-eglot.el ends here
