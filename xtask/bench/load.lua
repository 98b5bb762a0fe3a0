-- wrk's request mix for the service benchmarks of `cargo xtask bench`, and a summary line the
-- bench parses.
--
-- usage: wrk -t T -c C -d SECONDS -s xtask/bench/load.lua http://127.0.0.1:PORT -- MIX
--   MIX openstack: openstack_api's endpoints; a POST of a password authentication every
--       fourth request, whose token the GETs (validate, user, role list) then present
--   MIX http: http_service.py's items; a GET of an item, a POST every tenth request
-- At the end it prints: bench-load requests=N seconds=S errors=E bad_status=B

local mix
local sent = 0
local token = nil

function init(args)
   mix = args[1]
   if mix ~= "openstack" and mix ~= "http" then
      error("load.lua: the mix is openstack or http, not " .. tostring(mix))
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
   end
   return http()
end

function response(status, headers, body)
   local subject = headers["X-Subject-Token"]
   if subject then
      token = subject
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("bench-load requests=%d seconds=%.3f errors=%d bad_status=%d\n",
                          summary.requests, summary.duration / 1e6,
                          e.connect + e.read + e.write + e.timeout, e.status))
end
