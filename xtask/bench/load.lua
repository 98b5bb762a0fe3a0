-- wrk's request mix for the service benchmarks of `cargo xtask bench`, and a summary line the
-- bench parses.
--
-- usage: wrk -t T -c C -d SECONDS -s xtask/bench/load.lua http://127.0.0.1:PORT -- MIX
--   MIX openstack: openstack_api's endpoints; a POST of a password authentication every
--       fourth request, whose token the GETs (validate, user, role list) then present
--   MIX http: http_service.py's items; a GET of an item, a POST every tenth request
--   MIX keystone: the real Keystone's API as its bootstrap admin: a password token issue
--       (POST) every 100th request, whose token every other request presents; a user created
--       (POST) every 50th request and deleted by the next one; otherwise in turn token
--       validations, project lists and user lists
-- At the end it prints: bench-load requests=N seconds=S errors=E bad_status=B, where B counts
-- every answer outside 2xx (wrk's own count leaves 1xx and 3xx out).

local mix
local sent = 0
local token = nil
-- Users the keystone mix created and has not deleted yet.
local created = {}
-- A global, so that done() can read each thread's count (thread:get).
bad_status = 0
-- The threads, as setup() saw them, for done().
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mix = args[1]
   if mix ~= "openstack" and mix ~= "http" and mix ~= "keystone" then
      error("load.lua: the mix is openstack, http or keystone, not " .. tostring(mix))
   end
   math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

local function openstack()
   local user = math.random(1, 1000)
   local project = (user - 1) % 100 + 1
   if token == nil or sent % 4 == 0 then
      local body = string.format(
         '{"auth": {"identity": {"methods": ["password"], "password": {"user": '
            .. '{"id": "%d", "password": "bench-password"}}}, "scope": {"project": {"id": "%d"}}}}',
         user, project)
      return wrk.format("POST", "/v3/auth/tokens", {["Content-Type"] = "application/json"}, body)
   end
   local headers = {["X-Auth-Token"] = token}
   if sent % 4 == 1 then
      headers["X-Subject-Token"] = token
      return wrk.format("GET", "/v3/auth/tokens", headers)
   elseif sent % 4 == 2 then
      return wrk.format("GET", "/v3/users/" .. user, headers)
   end
   return wrk.format("GET", string.format("/v3/projects/%d/users/%d/roles", project, user), headers)
end

-- The bootstrap admin's password: xtask/src/bench/keystone.rs's ADMIN_PASSWORD.
local keystone_admin = '{"auth": {"identity": {"methods": ["password"], "password": {"user": '
   .. '{"name": "admin", "domain": {"id": "default"}, "password": "bench-password"}}}, '
   .. '"scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}'

local function keystone()
   if token == nil or sent % 100 == 0 then
      return wrk.format("POST", "/v3/auth/tokens", {["Content-Type"] = "application/json"},
                        keystone_admin)
   end
   local headers = {["X-Auth-Token"] = token}
   if #created > 0 then
      return wrk.format("DELETE", "/v3/users/" .. table.remove(created), headers)
   end
   if sent % 50 == 25 then
      headers["Content-Type"] = "application/json"
      -- Without a password: a bcrypt hash per creation would make it the costliest request.
      local body = string.format(
         '{"user": {"name": "bench-user-%d-%d", "domain_id": "default"}}',
         math.random(1, 1000000000), sent)
      return wrk.format("POST", "/v3/users", headers, body)
   end
   if sent % 3 == 0 then
      headers["X-Subject-Token"] = token
      return wrk.format("GET", "/v3/auth/tokens", headers)
   elseif sent % 3 == 1 then
      return wrk.format("GET", "/v3/projects", headers)
   end
   return wrk.format("GET", "/v3/users", headers)
end

local function http()
   local item = math.random(1, 500)
   if sent % 10 == 0 then
      local body = string.format('{"name": "item-%d", "size": %d}', item, item * 3)
      return wrk.format("POST", "/items", {["Content-Type"] = "application/json"}, body)
   end
   return wrk.format("GET", "/items/" .. item)
end

function request()
   sent = sent + 1
   if mix == "openstack" then
      return openstack()
   elseif mix == "keystone" then
      return keystone()
   end
   return http()
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      bad_status = bad_status + 1
      return
   end
   local subject = headers["X-Subject-Token"]
   if subject then
      token = subject
   end
   if mix == "keystone" then
      local user = body:match('^{"user": {"id": "(%x+)"')
      if status == 201 and user then
         table.insert(created, user)
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   local bad = 0
   for _, thread in ipairs(threads) do
      bad = bad + thread:get("bad_status")
   end
   io.write(string.format("bench-load requests=%d seconds=%.3f errors=%d bad_status=%d\n",
                          summary.requests, summary.duration / 1e6,
                          e.connect + e.read + e.write + e.timeout, bad))
end
