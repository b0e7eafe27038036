//! Go-`flag`-style argument parsing for GOST's command line (`-x value`, `-x=value`,
//! `--x value`; repeatable `-L`, `-F`, `-C`).

use std::time::Duration;

/// Parsed command line.
#[derive(Debug, Clone, Default)]
pub struct Cli {
    /// `-L` values.
    pub services: Vec<String>,
    /// `-F` values.
    pub nodes: Vec<String>,
    /// `-C` values.
    pub configs: Vec<String>,
    /// `-O yaml|json`.
    pub output: Option<String>,
    /// `-D` (1) / `-DD` (2).
    pub debug: u8,
    /// `-V`.
    pub version: bool,
    /// `-api`.
    pub api: Option<String>,
    /// `-metrics`.
    pub metrics: Option<String>,
    /// `--strict`: unknown metadata keys are errors.
    pub strict: bool,
    /// `--drain-timeout`: how long in-flight connections may finish on shutdown.
    pub drain: Option<Duration>,
    /// `--health addr`: `/live` and `/ready` for probes.
    pub health: Option<String>,
    /// `--metrics-no-client-label`.
    pub no_client_label: bool,
    /// `--external-hooks`: `preUp`/`postUp`/`preDown` run as container lifecycle steps
    /// (`gost-proxy hook …`); the engine runs only `postDown`, and `/ready` waits for
    /// `gost-proxy hook post-up --health …` to report that `postUp` ran.
    pub external_hooks: bool,
    /// `--no-watch`: do not reload when a `-C` file or directory changes.
    pub no_watch: bool,
    /// Positional arguments (after a subcommand).
    pub positional: Vec<String>,
}

/// Usage text.
pub const USAGE: &str = "\
usage: gost-proxy [flags]
       gost-proxy -L ... [-F ...] -- -L ... [-F ...]     (one process per group)
       gost-proxy hook <pre-up|post-up|pre-down|post-down> -C <config>

GOST flags:
  -L url        add a service, [handler[+listener]://][user:pass@][host]:port[/targets][?k=v]
  -F url        add a hop to chain-0, [connector[+dialer]://][user:pass@]host:port[,host:port][?k=v]
  -C src        config: file, directory, '-' (stdin) or inline '{...}' JSON (repeatable)
  -O yaml|json  print the effective configuration and exit
  -D / -DD      debug / trace logging
  -V            print the version and exit
  -api addr     Web API server, [user:pass@]host:port[?pathPrefix=/api&accesslog=true]
  -metrics addr Prometheus endpoint, [user:pass@]host:port[?path=/metrics]
kubegost flags:
  --strict              unknown metadata keys are errors
  --config-dir dir      same as -C dir (every *.yaml, *.yml, *.json in it, merged in name order)
  --external-hooks      preUp/postUp/preDown run as container lifecycle steps; the engine runs postDown
  --no-watch            do not reload when a -C file or directory changes (SIGHUP still does)
  --drain-timeout dur   drain deadline on SIGTERM (default 30s)
  --health addr         serve /live, /ready and /listening on addr (with `hook post-up`: wait for
                        /listening first, then report postUp done to it)
  --metrics-no-client-label   drop the unbounded `client` label from metrics
";

/// Parses flags; errors name the flag.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut c = Cli::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if !a.starts_with('-') || a == "-" {
            c.positional.push(a.clone());
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{what}"))?;
            i += 1;
            Ok(v)
        };
        match name.as_str() {
            "L" => c.services.push(value("L")?),
            "F" => c.nodes.push(value("F")?),
            "C" => c.configs.push(value("C")?),
            "O" => {
                let v = value("O")?;
                if v != "yaml" && v != "json" {
                    return Err(format!("invalid value {v:?} for -O (accepted: yaml, json)"));
                }
                c.output = Some(v);
            }
            "D" => c.debug = c.debug.max(1),
            "DD" => c.debug = 2,
            "V" => c.version = true,
            "api" => c.api = Some(value("api")?),
            "metrics" => c.metrics = Some(value("metrics")?),
            "strict" => c.strict = true,
            "no-watch" => c.no_watch = true,
            "external-hooks" => c.external_hooks = true,
            "config-dir" => c.configs.push(value("config-dir")?),
            "metrics-no-client-label" => c.no_client_label = true,
            "drain-timeout" => {
                let v = value("drain-timeout")?;
                let d = gost_config::parse_go_duration(&v)
                    .map_err(|e| format!("--drain-timeout: {e}"))?;
                c.drain = Some(d);
            }
            "health" => c.health = Some(value("health")?),
            "h" | "help" => return Err(USAGE.to_string()),
            other => return Err(format!("flag provided but not defined: -{other}\n{USAGE}")),
        }
    }
    Ok(c)
}

/// GOST's `--` rule: join with two spaces, split on `" -- "`. Returns the groups when the
/// multi-process mode applies (a leading `--` does not trigger it).
pub fn split_groups(args: &[String]) -> Option<Vec<Vec<String>>> {
    let joined = args.join("  ");
    let padded = format!(" {joined} ");
    if !padded.contains(" -- ") || args.first().is_some_and(|a| a == "--") {
        return None;
    }
    let groups: Vec<Vec<String>> = padded
        .split(" -- ")
        .map(|g| {
            g.trim()
                .split("  ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect();
    (groups.len() > 1).then_some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_style_flags() {
        let c = parse(&v(&[
            "-L",
            ":8080",
            "-L=:8081",
            "--F",
            "socks5://h:1",
            "-api",
            ":18080",
            "-DD",
            "-O",
            "json",
        ]))
        .unwrap();
        assert_eq!(c.services, vec![":8080", ":8081"]);
        assert_eq!(c.nodes, vec!["socks5://h:1"]);
        assert_eq!(c.api.as_deref(), Some(":18080"));
        assert_eq!(c.debug, 2);
        assert!(parse(&v(&["-O", "toml"])).is_err());
        assert!(parse(&v(&["-X"])).unwrap_err().contains("-X"));
        assert!(parse(&v(&["-L"])).unwrap_err().contains("-L"));
    }

    #[test]
    fn multi_process_groups() {
        let g = split_groups(&v(&["-L", ":1", "--", "-L", ":2", "-F", "h:3"])).unwrap();
        assert_eq!(g, vec![v(&["-L", ":1"]), v(&["-L", ":2", "-F", "h:3"])]);
        assert!(split_groups(&v(&["-L", ":1"])).is_none());
        assert!(split_groups(&v(&["--", "-L", ":1"])).is_none());
    }
}
