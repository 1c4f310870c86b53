//! The help's own text: examples, files and exit codes per command (`after_help`), laid out for
//! 80 columns (clap re-wraps longer lines, badly).

pub(super) const MAIN_AFTER_HELP: &str = "\
Examples:
  xvrrp check -f /etc/keepalived/keepalived.conf   check a keepalived config
  xvrrp run -f /etc/keepalived/keepalived.conf     run it in the foreground
  systemctl enable --now xvrrp                     run it as a service
  xvrrp status                                     what every instance does
  xvrrp status --watch                             the same, every 2 s
  xvrrp counters                                   adverts per peer, drops

Files:
  /etc/xvrrp/xvrrp.conf   default configuration (keepalived.conf syntax;
                          -f to change)
  /run/xvrrp/xvrrp.sock   the running agent's control socket, root only
                          (--control-socket to change, e.g. a second agent)
  dist/xvrrp.service      the systemd unit (Type=notify, reload by SIGHUP)

Exit codes:
  0  success; for `status`: healthy
  1  rejected input (config errors, printed as FILE:LINE:COLUMN); for
     `status`: a problem (an instance in FAULT, a virtual address not as
     wanted, a cloud takeover blocked)
  2  the agent cannot be reached (`status`, `counters`), or a usage error
  3  `run` could not set up the network (cannot attach, cannot bind)

`xvrrp COMMAND --help` explains each command.";

pub(super) const RUN_AFTER_HELP: &str = "\
Examples:
  xvrrp run                       /etc/xvrrp/xvrrp.conf, XDP if it attaches
  xvrrp run -f /etc/keepalived/keepalived.conf
                                  an existing keepalived config as it is
  xvrrp run --rx socket -v        raw socket only, debug logging
  xvrrp run --log-format json     JSON log lines on stderr

Signals: SIGTERM/SIGINT stop it (a Master sends priority 0 first, removes its
addresses and runs notify_stop); SIGHUP reloads the configuration.

Under systemd (Type=notify, dist/xvrrp.service) it reports READY, STATUS
(each instance's state), RELOADING, STOPPING, and pings the watchdog from
its event loop every WATCHDOG_USEC / 2.

Logs go to stderr: `LEVEL message` lines (with a UTC timestamp unless
journald stamps them), or JSON objects with --log-format json.

Exit codes: 0 after a clean stop, 1 configuration errors (nothing applied),
3 the network could not be set up.";

pub(super) const STATUS_AFTER_HELP: &str = "\
Examples:
  xvrrp status                  every instance: state, priorities, master,
                                addresses, trackers, cloud takeover; then
                                `health: ok` or the problems
  xvrrp status --watch          redraw every 2 s until Ctrl-C
  xvrrp status --watch 0.5      redraw every 0.5 s
  xvrrp status -q || alert      the exit code only
  xvrrp status --json | jq '.instances[] | {name, state}'

Healthy means: no instance in FAULT, every virtual address as the role wants
it (present on a Master, absent elsewhere), no cloud takeover blocked (API
token refused) or degraded while Master. A Backup, or a tracker down that
only lowers the priority, is healthy.

The JSON is the typed model of agent/src/state (`Status`); every field is
documented in docs/status-json.md.

Exit codes: 0 healthy, 1 a problem (listed at the end), 2 the agent cannot
be reached.";

pub(super) const COUNTERS_AFTER_HELP: &str = "\
Examples:
  xvrrp counters                per interface, and per VRID and peer:
                                accepted adverts and drops by reason
                                (keepalived's counter names)
  xvrrp counters --watch 1      redraw every second until Ctrl-C
  xvrrp counters --json | jq '.peers[] | select(.counters.auth_failure > 0)'

Exit codes: 0 answered, 2 the agent cannot be reached.";

pub(super) const RELOAD_AFTER_HELP: &str = "\
Examples:
  xvrrp reload                  re-read the running agent's configuration file
  systemctl reload xvrrp        the same through systemd (SIGHUP)
  xvrrp reload --json           which instances were kept, changed, rebuilt,
                                removed or added

Unchanged instances keep their state and advert rhythm; a configuration with
errors is rejected (printed as FILE:LINE:COLUMN) and the agent keeps running
the previous one.

Exit codes: 0 applied, 1 rejected (or applied with errors), 2 the agent
cannot be reached.";

pub(super) const CHECK_AFTER_HELP: &str = "\
Examples:
  xvrrp check                   /etc/xvrrp/xvrrp.conf
  xvrrp check -f /etc/keepalived/keepalived.conf
                                what xvrrp would run of a keepalived config
  xvrrp check --json | jq .instances

Errors are printed one per line as FILE:LINE:COLUMN: keyword: message (with
a suggestion for misspelled keywords); warnings (keywords xvrrp ignores) go
to stderr too.

Exit codes: 0 valid, 1 errors.";

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::Cli;

    /// Every visible command's help: within 80 columns, with examples and exit codes.
    #[test]
    fn every_help_teaches_with_examples_and_exit_codes_in_80_columns() {
        let mut main = Cli::command();
        main.build();
        let mut cmds = vec![main.clone()];
        cmds.extend(
            main.get_subcommands()
                .filter(|c| !c.is_hide_set() && c.get_name() != "help")
                .cloned(),
        );
        assert!(cmds.len() >= 5, "{}", cmds.len());
        for mut c in cmds {
            let name = c.get_name().to_owned();
            // Our own text is laid out for 80 columns (clap re-wraps longer lines badly).
            let after = c
                .get_after_help()
                .map(ToString::to_string)
                .unwrap_or_default();
            for l in after.lines() {
                assert!(l.chars().count() <= 79, "{name}: {l:?}");
            }
            let help = c.render_long_help().to_string();
            for want in ["Examples:", "Exit codes", "--control-socket"] {
                assert!(help.contains(want), "{name}: no {want:?}\n{help}");
            }
            for l in help.lines() {
                assert!(l.chars().count() <= 80, "{name}: {l:?}");
            }
        }
    }
}
