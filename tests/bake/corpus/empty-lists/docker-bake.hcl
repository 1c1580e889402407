target "base" {
  tags = ["base:1"]
  platforms = ["linux/amd64"]
  args = { A = "1" }
}
target "app" {
  inherits = ["base"]
  tags = []
  args = {}
  cache-from = ["type=registry,ref=example/cache"]
  contexts = { unused = "" }
}
