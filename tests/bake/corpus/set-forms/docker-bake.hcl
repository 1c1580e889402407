target "web-app" {
  tags = ["web:1"]
  platforms = ["linux/amd64"]
}
target "web-api" {
  tags = ["api:1"]
  output = ["type=local,dest=out"]
}
target "db" {}
