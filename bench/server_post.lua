-- wrk script for bench/server_load.sh: every request POSTs one real spam
-- message as {"text": "..."} to the URL given to wrk (/v1/classify).
-- The message file is $SPAM_MESSAGE (default data/spam-sample-new/spam.eml).

local path = os.getenv("SPAM_MESSAGE") or "data/spam-sample-new/spam.eml"
local f = assert(io.open(path, "rb"), "cannot open " .. path)
local text = f:read("*a")
f:close()

-- JSON string escaping: quote, backslash and control bytes; other bytes as
-- they are (the server takes the string's bytes as the raw message).
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": ' .. json_string(text) .. '}'
