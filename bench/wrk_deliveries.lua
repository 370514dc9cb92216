-- Every request is a unique, signed Jira delivery: the same body, a new delivery id.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Hub-Signature"] = args[2]
end

function request()
  counter = counter + 1
  wrk.headers["X-Atlassian-Webhook-Identifier"] = string.format("bench-%d-%d", thread_id, counter)
  return wrk.format()
end
