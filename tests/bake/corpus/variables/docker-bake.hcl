variable "REGISTRY" {
  default = "registry.example:5000"
  description = "Where images go"
}
variable "PUSH" {
  default = true
}
variable "N" {
  default = 3
}
variable "EMPTY" {}
group "default" {
  targets = ["app"]
}
group "all" {
  targets = ["worker", "app"]
}
target "_private" {}
target "app" {
  description = "The application"
  inherits = ["_private"]
  tags = ["${REGISTRY}/app:${N}"]
}
target "worker" {
  args = { PUSH = PUSH }
}
