# The --print fixture: groups (one nested), inherits (two levels), a
# variable, a function, a target context and --set overrides. expected.json
# is what `docker buildx bake --print` (v0.38.2) prints for it with the
# flags in tests/bake.rs.
variable "TAG" {
  default = "1.0"
}
variable "REGISTRY" {
  default = "registry.example:5000"
}
group "default" {
  targets = ["all"]
}
group "all" {
  targets = ["api", "worker"]
}
target "_base" {
  context = "."
  args = {
    BASE = "busybox"
    MODE = "release"
  }
  labels = {
    "org.opencontainers.image.source" = "https://example.com/repo"
  }
}
target "_cached" {
  inherits = ["_base"]
  cache-from = ["type=registry,ref=${REGISTRY}/cache:${TAG}"]
}
target "api" {
  inherits = ["_cached"]
  dockerfile = "api.Dockerfile"
  tags = ["${REGISTRY}/api:${TAG}", "${REGISTRY}/api:${lower("LATEST")}"]
  contexts = {
    shared = "target:shared"
  }
  platforms = ["linux/amd64"]
}
target "worker" {
  inherits = ["_base"]
  target = "worker"
  args = {
    MODE = "debug"
  }
  tags = ["${REGISTRY}/worker:${TAG}"]
  no-cache = true
}
target "shared" {
  dockerfile = "shared.Dockerfile"
}
