-- default_config of huggingface/llm.nvim lua/llm/config.lua, commit ce69731ba3f8d3ea8bc4c8f58c74c2f9ea0b33de
-- (https://github.com/huggingface/llm.nvim/blob/ce69731ba3f8d3ea8bc4c8f58c74c2f9ea0b33de/lua/llm/config.lua), vendored verbatim
-- as the table of settings llm.nvim's setup() knows; returned for check-llm-nvim-config.lua.
local default_config = {
  api_token = nil,
  model = "bigcode/starcoder2-15b",
  backend = "huggingface",
  url = nil,
  tokens_to_clear = { "<|endoftext|>" },
  ---@class llm_config_request_body
  request_body = {
    parameters = {
      max_new_tokens = 60,
      temperature = 0.2,
      top_p = 0.95,
    },
  },
  ---@class llm_config_fim
  fim = {
    enabled = true,
    prefix = "<fim_prefix>",
    middle = "<fim_middle>",
    suffix = "<fim_suffix>",
  },
  debounce_ms = 150,
  accept_keymap = "<Tab>",
  dismiss_keymap = "<S-Tab>",
  tls_skip_verify_insecure = false,
  ---@class llm_config_lsp
  lsp = {
    bin_path = nil,
    host = nil,
    port = nil,
    cmd_env = nil,
    version = "0.5.3",
  },
  tokenizer = nil,
  context_window = 1024,
  enable_suggestions_on_startup = true,
  ---@type string|table
  enable_suggestions_on_files = "*",
  disable_url_path_completion = false,
}
return default_config
