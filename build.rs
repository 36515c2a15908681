//! Compiles `proto/` into Rust with protox (a pure-Rust protobuf compiler, so no system `protoc`
//! is needed) and tonic's prost code generator.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/proto/rpc/v1/auth.proto",
        "proto/viam/common/v1/common.proto",
        "proto/viam/app/v1/app.proto",
        "proto/viam/app/v1/robot.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Methods a handler does not implement answer UNIMPLEMENTED: registered kinds' RPCs
        // are served by the local cloud's kind router, not by the `AppService` impl (a test
        // checks the impl still serves every other method of the service).
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
