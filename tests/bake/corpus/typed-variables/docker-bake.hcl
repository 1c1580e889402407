variable "S" {
  type = string
  default = 5
}
variable "N" {
  type = number
  default = "3.50"
}
variable "BO" {
  type = bool
  default = "true"
}
variable "A" {
  type = any
  default = ["x", 1]
}
variable "L" {
  type = list(number)
  default = ["1", 2]
}
variable "SE" {
  type = set(string)
  default = ["b", "a", "b"]
}
variable "M" {
  type = map(string)
  default = { z = 1, a = "x" }
}
variable "T" {
  type = tuple([string, number])
  default = ["a", "2"]
}
variable "O" {
  type = object({ name = string, n = number })
  default = { name = "x", n = "4", extra = 1 }
}
variable "UN" {
  default = 1.5
}
variable "UB" {
  default = true
}
variable "UL" {
  default = ["a", 1]
}
variable "UM" {
  default = { k = "v" }
}
variable "AN" {
  type = any
}
target "default" {
  args = { s = S, n = N, bo = BO, l = "${jsonencode(L)}", se = "${jsonencode(SE)}", m = "${jsonencode(M)}", t = "${jsonencode(T)}", o = "${jsonencode(O)}", a = "${jsonencode(A)}" }
}
