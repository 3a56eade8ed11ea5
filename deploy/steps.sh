# Shared by deploy/install.sh and deploy/llm.sh (sourced): messages and long steps.
# Needs TOOLS set (the logs go to $TOOLS/logs).

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
# Run a long step with its output in a log: on a terminal one live line shows the
# latest output and the time so far; elsewhere (CI) the output is shown as it comes.
# On failure the end of the log is printed.
run_step() {  # run_step NAME COMMAND...
  local name="$1"; shift
  local log="$TOOLS/logs/$name.log" started=$SECONDS rc=0
  if [ -t 1 ]; then
    "$@" > "$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      local last
      last="$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-70)"
      printf '\r\033[K  %s %3ds  %s' "$name" $((SECONDS - started)) "$last"
      sleep 1
    done
    wait "$pid" || rc=$?
    printf '\r\033[K'
  else
    "$@" 2>&1 | tee "$log" | sed -u "s/^/  $name: /" || rc=${PIPESTATUS[0]}
  fi
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$log" >&2
    echo "install.sh: $name failed (exit $rc); full log: $log" >&2
    exit 1
  fi
  say "$name: done in $((SECONDS - started)) s"
}
