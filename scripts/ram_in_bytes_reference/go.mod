module gou
go 1.21
require github.com/docker/go-units v0.5.0
