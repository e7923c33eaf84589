//! `glass flags get|set`: a running member's settings through `glass.v1.Diagnostics`
//! (`GetFlags`, `SetFlag`). Errors are the server's message (the caller exits 1).

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
use glassd::pb::glass::v1::{Flag, GetFlagsRequest, SetFlagRequest};
use tonic::transport::{Channel, Endpoint};

use crate::bench::endpoint_uri;

/// How `get` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// The first of `endpoints` that accepts a connection.
async fn connect(endpoints: &[String]) -> anyhow::Result<DiagnosticsClient<Channel>> {
    let mut last = None;
    for e in endpoints {
        let uri = endpoint_uri(e)?;
        let channel = Endpoint::from_shared(uri.clone())
            .with_context(|| format!("bad endpoint {uri}"))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .connect()
            .await;
        match channel {
            Ok(c) => return Ok(DiagnosticsClient::new(c)),
            Err(err) => last = Some(anyhow!(err).context(format!("cannot connect to {uri}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no endpoints given")))
}

/// The server's message for a refused call, with its code.
pub(crate) fn status_text(s: &tonic::Status) -> String {
    format!("{} ({:?})", s.message(), s.code())
}

fn refused(s: tonic::Status) -> anyhow::Error {
    anyhow!(status_text(&s))
}

/// `glass flags get [NAME]`.
pub async fn get(endpoints: &[String], name: Option<&str>, format: Format) -> anyhow::Result<()> {
    let mut client = connect(endpoints).await?;
    let mut flags = client
        .get_flags(GetFlagsRequest {})
        .await
        .map_err(refused)?
        .into_inner()
        .flags;
    if let Some(n) = name {
        flags.retain(|f| f.name == n || f.aliases.iter().any(|a| a == n));
        if flags.is_empty() {
            bail!("unknown flag {n:?}");
        }
    }
    print!(
        "{}",
        match format {
            Format::Table => table(&flags),
            Format::Json => json(&flags),
        }
    );
    Ok(())
}

/// `glass flags set NAME VALUE [--persist]`: prints `NAME: OLD -> NEW`.
pub async fn set(
    endpoints: &[String],
    name: &str,
    value: &str,
    persist: bool,
) -> anyhow::Result<()> {
    let mut client = connect(endpoints).await?;
    let resp = client
        .set_flag(SetFlagRequest {
            name: name.to_string(),
            value: value.to_string(),
            persist,
        })
        .await
        .map_err(refused)?
        .into_inner();
    let flag = resp.flag.unwrap_or_default();
    println!(
        "{}: {} -> {}{}",
        flag.name,
        show(&resp.old_value),
        show(&flag.value),
        if persist {
            " (persisted)"
        } else {
            " (until restart)"
        }
    );
    Ok(())
}

/// An empty value shown as `""`, so that a column or an arrow is never blank.
fn show(v: &str) -> &str {
    if v.is_empty() {
        "\"\""
    } else {
        v
    }
}

/// Aligned columns: NAME VALUE DEFAULT SOURCE RUNTIME DESCRIPTION.
fn table(flags: &[Flag]) -> String {
    let rows: Vec<[&str; 6]> = flags
        .iter()
        .map(|f| {
            [
                f.name.as_str(),
                show(&f.value),
                show(&f.default_value),
                f.source.as_str(),
                if f.runtime { "yes" } else { "no" },
                f.description.as_str(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "VALUE",
        "DEFAULT",
        "SOURCE",
        "RUNTIME",
        "DESCRIPTION",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// JSON string literals as the server writes them.
use glassd::etcdserver::json_string as quote;

/// `{"flags":[{"name":…,"value":…,"default":…,"source":…,"runtime":…,"description":…,"aliases":[…]}]}`.
fn json(flags: &[Flag]) -> String {
    let items: Vec<String> = flags
        .iter()
        .map(|f| {
            let aliases: Vec<String> = f.aliases.iter().map(|a| quote(a)).collect();
            format!(
                "{{\"name\":{},\"value\":{},\"default\":{},\"source\":{},\"runtime\":{},\"description\":{},\"aliases\":[{}]}}",
                quote(&f.name),
                quote(&f.value),
                quote(&f.default_value),
                quote(&f.source),
                f.runtime,
                quote(&f.description),
                aliases.join(",")
            )
        })
        .collect();
    format!("{{\"flags\":[{}]}}\n", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(name: &str, value: &str, runtime: bool) -> Flag {
        Flag {
            name: name.into(),
            value: value.into(),
            default_value: "0".into(),
            source: "runtime".into(),
            runtime,
            description: "A \"quoted\" help.".into(),
            aliases: vec![],
        }
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&[flag("max-txn-ops", "64", true), flag("name", "", false)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME         VALUE  DEFAULT  SOURCE   RUNTIME  DESCRIPTION"
        );
        assert_eq!(
            lines[1],
            "max-txn-ops  64     0        runtime  yes      A \"quoted\" help."
        );
        assert_eq!(
            lines[2],
            "name         \"\"     0        runtime  no       A \"quoted\" help."
        );
    }

    #[test]
    fn json_escapes() {
        let j = json(&[flag("a", "x\\y", true)]);
        assert_eq!(
            j,
            "{\"flags\":[{\"name\":\"a\",\"value\":\"x\\\\y\",\"default\":\"0\",\"source\":\"runtime\",\"runtime\":true,\"description\":\"A \\\"quoted\\\" help.\",\"aliases\":[]}]}\n"
        );
    }
}
