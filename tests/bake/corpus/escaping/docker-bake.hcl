target "default" {
  args = { A = "<a&b>", B = "x\u2028y" }
  tags = ["r/app:1"]
}
