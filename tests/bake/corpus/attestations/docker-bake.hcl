target "_common" {
  annotations = ["org.opencontainers.image.vendor=example"]
  attest = ["type=provenance,mode=max"]
  ulimits = ["nofile=1024:2048"]
}
target "app" {
  inherits = ["_common"]
  annotations = ["index:org.example.note=hello", "org.opencontainers.image.vendor=example"]
  attest = [{ type = "sbom", disabled = true }, "type=provenance,mode=min"]
  shm-size = "128m"
  ulimits = ["nproc=20:30"]
  network = "host"
  entitlements = ["security.insecure"]
}
target "tool" {
  inherits = ["_common"]
  call = "check"
}
group "default" { targets = ["tool", "app"] }
