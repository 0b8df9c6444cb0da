-- Fill a key template from jobs/keys.py (passed in ARGV): each '{}' in turn takes the next value.
-- Functions only, no KEYS or ARGV of its own: for keys named by a field read inside the script.

local function key_from(template, ...)
  local key = template
  for _, value in ipairs({...}) do
    local at = string.find(key, '{}', 1, true)
    key = string.sub(key, 1, at - 1) .. value .. string.sub(key, at + 2)
  end
  return key
end
