//! Compiles the etcd v3.4 API in `proto/` into Rust (prost messages, tonic
//! clients and servers) with protox, so no `protoc` is needed.
//!
//! Every `.proto` under `proto/` is compiled; each proto package becomes
//! `$OUT_DIR/<package>.rs` (mvccpb, authpb, etcdserverpb, ...).

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = Path::new("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let mut files = Vec::new();
    collect_protos(proto_dir, &mut files)?;
    files.sort();
    // protox names files relative to the include root, as imports spell them.
    let files: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(proto_dir).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new([proto_dir])?;
    // Only our files: no imports are outside proto/, and with imports
    // included any google/* well-known file would be generated too.
    compiler.include_imports(false);
    // Keeps the .proto comments as rustdoc on the generated items.
    compiler.include_source_info(true);
    compiler.open_files(&files)?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
