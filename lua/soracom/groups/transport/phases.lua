--- The phases of ngx_lua (the names ngx.get_phase() gives), as the transports see
-- them. Both transports read this one table.

return {
  -- Where Lua code may use cosockets and ngx.sleep, which yield to the worker's other
  -- requests instead of blocking it.
  cosockets = {
    rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
    ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
  },
  -- Where a blocking libcurl call harms nobody: the master loading the configuration,
  -- before any worker serves a request. Everywhere else in a running worker (log,
  -- header_filter, init_worker, balancer, ...) a call would stall every request the
  -- worker holds, so the default transport refuses it.
  blocking_allowed = { init = true },
}
