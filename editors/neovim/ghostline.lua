-- Ghostline in Neovim: ghost text on 0.12+ (vim.lsp.inline_completion), a completion-menu item on 0.11.
-- Load it from your init.lua, after telling it where Ghostline's Python is:
--   vim.g.ghostline_python = '/path/to/ghostline/.venv/bin/python'
--   dofile('/path/to/ghostline/editors/neovim/ghostline.lua')
-- Settings go in init_options (the names of the VS Code settings without `ghostline.`).
local python = vim.g.ghostline_python or 'python3'

vim.lsp.config('ghostline', {
  cmd = { python, '-m', 'server' },
  filetypes = { 'python', 'javascript', 'typescript', 'javascriptreact', 'typescriptreact', 'go', 'rust', 'lua', 'sh' },
  root_markers = { '.git' },
  init_options = vim.g.ghostline_settings or { maxTokens = 64, multiline = 'auto' },
})
vim.lsp.enable('ghostline')

vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if not client or client.name ~= 'ghostline' then
      return
    end
    local inline = vim.lsp.inline_completion
    if inline and inline.enable then
      -- 0.12+: ghost text as you type; <Tab> accepts it (and reports the accept), else inserts a tab.
      inline.enable(true, { bufnr = ev.buf })
      vim.keymap.set('i', '<Tab>', function()
        if not inline.get() then
          return '<Tab>'
        end
      end, { expr = true, buffer = ev.buf, desc = 'Ghostline: accept' })
    else
      -- 0.11: the suggestion as a completion item, asked for after . ( [ { , : = and space, or with
      -- <C-Space>; <C-y> accepts it whole (a snippet) and reports the accept.
      vim.lsp.completion.enable(true, client.id, ev.buf, { autotrigger = true })
      vim.keymap.set('i', '<C-Space>', vim.lsp.completion.get, { buffer = ev.buf, desc = 'Ghostline: suggest' })
    end
  end,
})
