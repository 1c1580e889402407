group "default" { targets = ["zeta", "backend", "alpha"] }
group "backend" { targets = ["worker", "api"] }
target "zeta" {}
target "alpha" {}
target "api" {}
target "worker" {}
