//! The command line, read by Go's `flag` package rules as etcd reads it: `-flag` and `--flag`
//! alike, the value as `--flag=value` or `--flag value` (booleans only with `=`), `--`
//! ending the flags, and no positional arguments.

use std::ffi::OsString;

use super::error::ConfigError;
use super::spec;

/// One flag as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgFlag {
    /// The name without dashes, as typed (possibly an alias).
    pub name: String,
    /// `--name` as shown in messages.
    pub origin: String,
    pub value: String,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    Help,
    Version,
    Flags(Vec<ArgFlag>),
}

enum Known {
    Value,
    Bool,
}

fn known(name: &str) -> Option<Known> {
    if spec::lookup(name).is_some() {
        return Some(Known::Value);
    }
    match spec::lookup_unsupported(name) {
        Some(u) if u.yaml_only => None,
        Some(u) if u.boolean => Some(Known::Bool),
        Some(_) => Some(Known::Value),
        None => None,
    }
}

pub(crate) fn parse<I, T>(args: I) -> Result<Parsed, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args = args
        .into_iter()
        .map(|a| {
            a.into().into_string().map_err(|a| ConfigError::NotUtf8 {
                arg: a.to_string_lossy().into_owned(),
            })
        })
        .collect::<Result<Vec<String>, _>>()?;
    let mut out = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            // The end of the flags; etcd then refuses whatever follows.
            return match it.next() {
                Some(rest) => Err(ConfigError::NotAFlag { arg: rest }),
                None => Ok(Parsed::Flags(out)),
            };
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            return Err(ConfigError::NotAFlag { arg });
        }
        let body = arg
            .strip_prefix("--")
            .unwrap_or_else(|| arg.strip_prefix('-').unwrap_or(&arg));
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ConfigError::BadSyntax { arg });
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        let origin = format!("--{name}");
        match name.as_str() {
            "h" | "help" => return Ok(Parsed::Help),
            "version" => {
                let on = match &inline {
                    Some(v) => {
                        super::value::parse_bool(v).map_err(|reason| ConfigError::InvalidValue {
                            origin,
                            value: v.clone(),
                            reason: reason.to_string(),
                        })?
                    }
                    None => true,
                };
                if on {
                    return Ok(Parsed::Version);
                }
                continue;
            }
            _ => {}
        }
        let value = match (known(&name), inline) {
            (None, _) => return Err(ConfigError::UnknownFlag { flag: origin }),
            (Some(_), Some(v)) => v,
            (Some(Known::Bool), None) => "true".to_string(),
            (Some(Known::Value), None) => it.next().ok_or(ConfigError::MissingValue {
                flag: origin.clone(),
            })?,
        };
        out.push(ArgFlag {
            name,
            origin,
            value,
        });
    }
    Ok(Parsed::Flags(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Vec<(String, String)> {
        match parse(args.iter().copied()).unwrap() {
            Parsed::Flags(f) => f.into_iter().map(|f| (f.name, f.value)).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn go_flag_forms() {
        assert_eq!(
            flags(&[
                "--name",
                "a",
                "-data-dir=/d",
                "--wal-dir=",
                "-enable-v2",
                "--pre-vote=false"
            ]),
            vec![
                pair("name", "a"),
                pair("data-dir", "/d"),
                pair("wal-dir", ""),
                pair("enable-v2", "true"),
                pair("pre-vote", "false"),
            ]
        );
        // A value may itself start with a dash.
        assert_eq!(flags(&["--name", "-x"]), vec![pair("name", "-x")]);
        assert_eq!(flags(&["--name=a", "--"]), vec![pair("name", "a")]);
        assert_eq!(parse(["-h"]).unwrap(), Parsed::Help);
        assert_eq!(parse(["--name", "a", "--help"]).unwrap(), Parsed::Help);
        assert_eq!(parse(["--version"]).unwrap(), Parsed::Version);
        assert_eq!(flags(&["--version=false"]), vec![]);
    }

    #[test]
    fn go_flag_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["--nme", "a"], "unknown flag --nme"),
            (
                &["--client-transport-security=x"],
                "unknown flag --client-transport-security",
            ),
            (&["---name=a"], "bad flag syntax: ---name=a"),
            (&["--=a"], "bad flag syntax: --=a"),
            (&["--name"], "flag needs an argument: --name"),
            (&["serve"], "'serve' is not a valid flag"),
            (&["--name", "a", "extra"], "'extra' is not a valid flag"),
            (&["--", "--name=a"], "'--name=a' is not a valid flag"),
            (&["-"], "'-' is not a valid flag"),
        ];
        for (args, want) in cases {
            let err = parse(args.iter().copied()).unwrap_err();
            assert_eq!(err.to_string(), *want, "{args:?}");
            assert!(err.is_usage());
        }
    }
}
