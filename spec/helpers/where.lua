-- Where a drop record says the kernel dropped it: the function of its
-- `location` when the kernel printed it as a symbol, else the first stack
-- frame below the tracing code, else nil. Text mode on kernels before 6.12
-- keeps the kernel's hashed pointers (see instance.c), and 6.1 prints
-- `location` with %p: there only the stack names the place.
return function(rec)
  local loc = tostring(rec.fields.location or "")
  if loc:find("^[%a_]") then return (loc:match("^([^+]+)")) end
  for _, f in ipairs(rec.stack or {}) do
    local fn = f:match("^([^+]+)")
    if not fn:find("^trace_") and not fn:find("kfree_skb") and not fn:find("reason_drop")
        and not fn:find("kprobe") then
      return fn
    end
  end
  return nil
end
