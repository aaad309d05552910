-- Runs the llm.nvim setup snippet Tailor prints (file in arg[1]) under LuaJIT, Neovim's Lua,
-- with require('llm') standing in for the plugin: every option must be one llm.nvim's
-- default_config has (vendored beside this file), of the same type where the default is set.
-- Prints the options as JSON for the caller to compare with what it meant to print.
local here = arg[0]:match("(.*/)") or "./"
local defaults = dofile(here .. "llm-nvim-default-config.lua")
-- Options whose default is nil: the types llm.nvim's README documents for them.
local untyped = { api_token = "string", url = "string", tokenizer = "table" }

local function check(opts, known, path)
  for key, value in pairs(opts) do
    local name = path .. key
    local default = known[key]
    local want = default ~= nil and type(default) or untyped[name]
    if want == nil then
      error("llm.nvim has no option " .. name)
    end
    if type(value) ~= want then
      error(name .. " is a " .. type(value) .. ", llm.nvim's is a " .. want)
    end
    if want == "table" and type(default) == "table" and next(default) ~= nil and #default == 0 then
      if name ~= "request_body" then -- sent to the backend as is: any field
        check(value, default, name .. ".")
      end
    end
  end
end

local function json(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for _, item in ipairs(v) do parts[#parts + 1] = json(item) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local parts = {}
    for k, item in pairs(v) do parts[#parts + 1] = json(tostring(k)) .. ":" .. json(item) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  elseif t == "nil" then
    return "null"
  end
  return tostring(v)
end

package.preload["llm"] = function()
  return {
    setup = function(opts)
      check(opts, defaults, "")
      io.write(json(opts))
    end,
  }
end
dofile(arg[1])
