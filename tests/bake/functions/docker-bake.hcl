# Every function of buildx's HCL library (bake/hclparser/stdlib.go in buildx
# v0.38.2), several cases each. `fbuild bake --print` must print what
# `buildx bake --print` prints (expected.json, written by
# scripts/bake_reference.sh tests/bake/functions). Results that are not
# strings are passed through jsonencode, since args hold strings.
# docker-bake.json beside it has a target whose strings are templates.
# timestamp, uuidv4 and bcrypt differ on every call: tests/bake.rs checks
# their shape instead.

variable "NAME" { default = "Ünïcode App" }
variable "EMPTY" { default = "" }
variable "NUMS" { default = [3, -1, 2.5, 0] }
variable "OBJ" {
  default = { b = "2", a = "1", c = null }
}
variable "KEY" {
  default = <<EOT
-----BEGIN RSA PRIVATE KEY-----
MIICXQIBAAKBgQDLlk7Swl/29OKLpwJRt3q5atFoYvkihbZFKLZtoZNaiIp08Pyu
W3HELIfGOu4fWkS1vzm8ba+jwW3SHnXvEOS3MvEj0qYMPCiQC31zrMczXFRiDo83
EPEKivYlegRyB2NuaUpLRwxR6tYnbY+DfxeRyuV0hBKX57gCx7h0AQtBmQIDAQAB
AoGAT+6UxhUA3pIpPFF3DKRwL8prq4Noc5ByDtc8QPD2TM5dJirT2pUWpsIhEMhk
Y7TqUz1gKsYZ9r5kIuJIxXMpiLzVOQGxSKdU0fxYWSdMgK7IDRJGwxt2Iv0WU24U
1cv0TEjJ3XBMJI0oMsZLz6qtHw/BtYx63DWhxVJQntaqcG0CQQDm0ztUA7z7qKC1
o8B2dEGBx/rCmD9tWmdeN2PvQQ6R++2WPLHPtNxbtU6VX278de9DYoeSmxU1Kb4i
UuL9FbvrAkEA4cqTgqkXZs8YveeS9fTyKMfhcD2hxCY88heWFx9Rvcr94jQ/2mYg
LEvq1mQiVaxup/AS79ncQRi1zmCrhFlriwJAHqjWC43Hj2HRnu7WRKWigduPOkPA
wQSuEDypQIFSrx9Yaok7UQyD7IaDnqGje1Mq6bdvrJB+26XkxGhgEB/P6wJBAND/
yXD9gbrZYcaO71qZw/l5ozRY6D7/QhS5PmXiyLAMkNrskFphg9Bc6WBPyfRRqw/q
Si0YFSdwbwE8PCdC+icCQQCq+a7tnckg5l+z31rnSVDv68YjkI3pGEcwbta4Y+sO
L1mpu7wj/9SkuY/22feczEc16MfrYqIMQETbyUS95Er+
-----END RSA PRIVATE KEY-----
EOT
}

variable "FROM_FUNCTIONS" {
  default = try(upper(NOT_A_VARIABLE), join("-", sort(split(",", "c,a,b"))))
}
variable "NESTED" {
  default = { list = [[1, [2]], []], map = { inner = { deep = "x" } } }
}

function "versions" {
  params = [prefix]
  variadic_params = rest
  result = [for v in rest : "${prefix}${try(trimprefix(v, "v"), v)}" if can(regex("^v?[0-9]", v))]
}

function "tagged" {
  params = [name, version]
  result = "${lower(name)}:${try(version, "latest")}"
}

group "default" {
  targets = ["strings", "regexes", "collections", "sets", "numbers", "encoding", "crypto", "network", "time", "lazy", "misc", "edges", "templates", "json"]
}

target "strings" {
  args = {
    upper_1 = upper("abc")
    upper_2 = upper("straße ǆ é")
    upper_3 = upper(12)
    lower_1 = lower(NAME)
    lower_2 = lower("ÀÉÎ")
    title_1 = title("hello world-wide o'neil")
    title_2 = title("")
    title_3 = title("élan vital_x 9lives")
    trimspace_1 = trimspace("  \t a b \n ")
    trimspace_2 = trimspace("")
    trim_1 = trim("?!hello?!", "!?")
    trim_2 = trim("ééaéé", "é")
    trimprefix_1 = trimprefix("helloworld", "hello")
    trimprefix_2 = trimprefix("hello", "x")
    trimsuffix_1 = trimsuffix("helloworld", "world")
    trimsuffix_2 = trimsuffix("", "")
    chomp_1 = chomp("hello\n\n")
    chomp_2 = chomp("hello\r\n")
    chomp_3 = chomp("a\nb")
    indent_1 = indent(2, "a\nb\nc")
    indent_2 = indent(0, "x\ny")
    strlen_1 = strlen("")
    strlen_2 = strlen("héllo")
    strlen_3 = strlen("e\u0301👍🏽")
    substr_1 = substr("hello world", 1, 4)
    substr_2 = substr("hello world", -5, 3)
    substr_3 = substr("hello", 0, -1)
    substr_4 = substr("héllo", 1, 0)
    substr_5 = substr("abc", 2, 10)
    reverse_1 = reverse("hello")
    reverse_2 = reverse("héllo👍🏽")
    reverse_3 = reverse("")
    replace_1 = replace("1 + 2 + 3", "+", "-")
    replace_2 = replace("abc", "", "-")
    replace_3 = replace("", "a", "b")
    split_1 = jsonencode(split(",", "a,b,,c"))
    split_2 = jsonencode(split(",", ""))
    split_3 = jsonencode(split("", "héy"))
    join_1 = join("-", ["a", "b", "c"])
    join_2 = join(", ", [1, true, "x"])
    join_3 = join("", [])
    join_4 = join("/", ["a"], ["b", "c"])
    format_1 = format("Hello, %s!", "Ander")
    format_2 = format("%d items at %.2f each, %5d|%-5d|%05d", 3, 1.5, 42, 42, -42)
    format_3 = format("%v %v %v %v", "s", 12, true, [1, "a"])
    format_4 = format("%#v %#v", "s", {b = 1, a = null})
    format_5 = format("%q %t %x %X %o %b %e %g %G", "a\"b<", true, 255, 255, 8, 5, 1234.5678, 0.00001, 1e30)
    format_6 = format("%[2]s %[1]s %s", "a", "b")
    format_7 = format("%%%s%%", "x")
    format_8 = format("%8.3s|%-6s|%6s", "abcdef", "ab", "é")
    format_9 = format("%+d % d %+.1f %x", 5, 5, 2.25, -255)
    format_10 = format("no verbs")
    format_11 = format("%v|%v|%v|%g|%g|%v|%v|%.3g|%g|%v", 1234567, 123456, 0.0001, 100000, 1000000, 1.5e-7, 12345678901, 1234.5678, 2.5, -42)
    format_12 = format("%5.1f|%-8.2e|%08.3f|%+g|%v|%s", 3.14159, 1234.5, -3.14159, 2.0, -0.5, -7)
    formatlist_1 = jsonencode(formatlist("%s=%s", ["a", "b"], ["1", "2"]))
    formatlist_2 = jsonencode(formatlist("Hello, %s!", ["A", "B"]))
    formatlist_3 = jsonencode(formatlist("%s-%d", "x", [1, 2, 3]))
    formatlist_4 = jsonencode(formatlist("%s", []))
    formatlist_5 = jsonencode(formatlist("fixed"))
    sanitize_1 = sanitize("feature/foo.bar@baz")
    sanitize_2 = sanitize("héllo wörld")
    sanitize_3 = sanitize("")
    basename_1 = basename("/a/b/c.txt")
    basename_2 = basename("a/b/")
    basename_3 = basename("")
    basename_4 = basename("/")
    basename_5 = basename("file")
    dirname_1 = dirname("/a/b/c.txt")
    dirname_2 = dirname("a/b/")
    dirname_3 = dirname("")
    dirname_4 = dirname("file")
    dirname_5 = dirname("/a")
    dirname_6 = dirname("a//b/../c/d")
  }
}

target "regexes" {
  args = {
    regex_1 = regex("[a-z]+", "53453453.345345aaabbbccc23454")
    regex_2 = jsonencode(regex("(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)", "2019-02-01"))
    regex_3 = jsonencode(regex("^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?", "https://terraform.io/docs/"))
    regex_4 = jsonencode(regex("(a)(b)?", "ac"))
    regex_5 = regex("é+", "aééb")
    regexall_1 = jsonencode(regexall("[a-z]+", "1234abcd5678efgh9"))
    regexall_2 = jsonencode(regexall("[a-z]+", "123"))
    regexall_3 = jsonencode(regexall("(\\w)=(\\d)", "a=1 b=2"))
    regexall_4 = jsonencode(regexall("(?P<k>\\w)=(?P<v>\\d)", "a=1 b=2"))
    regex_replace_1 = regex_replace("hello world", "o", "0")
    regex_replace_2 = regex_replace("2019-02-01", "(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1")
    regex_replace_3 = regex_replace("a.b.c", "\\.", "")
    regex_replace_4 = regex_replace("abc", "(?P<first>a)", "[$${first}]")
    regex_replace_5 = regex_replace("", "x*", "-")
  }
}

target "collections" {
  args = {
    coalesce_1 = coalesce("", "b")
    coalesce_2 = coalesce(null, "b")
    coalesce_3 = coalesce(null, 1, "x")
    coalesce_4 = jsonencode(coalesce(null, ["a"]))
    coalescelist_1 = jsonencode(coalescelist([], ["a", "b"], ["c"]))
    compact_1 = jsonencode(compact(["a", "", "b", null, "c"]))
    compact_2 = jsonencode(compact([]))
    compact_3 = jsonencode(compact([1, "", 2]))
    concat_1 = jsonencode(concat(["a", ""], ["b", "c"]))
    concat_2 = jsonencode(concat([], [1, "x", null]))
    concat_3 = jsonencode(concat([[1]], [{a = 1}]))
    contains_1 = contains(["a", "b"], "a")
    contains_2 = contains(["a", "b"], "c")
    contains_3 = contains([1, 2], 2)
    contains_4 = contains([], "x")
    distinct_1 = jsonencode(distinct(["a", "b", "a", "c", "b"]))
    distinct_2 = jsonencode(distinct([1, "1", 2]))
    distinct_3 = jsonencode(distinct([]))
    element_1 = element(["a", "b", "c"], 1)
    element_2 = element(["a", "b", "c"], 5)
    element_3 = element(["a", "b", "c"], -1)
    flatten_1 = jsonencode(flatten([["a", "b"], [], ["c", ["d", ["e"]]]]))
    flatten_2 = jsonencode(flatten([]))
    hasindex_1 = hasindex(["a", "b"], 1)
    hasindex_2 = hasindex(["a", "b"], 2)
    index_1 = index(["a", "b", "c"], 2)
    indexof_1 = indexof(["a", "b", "c"], "b")
    indexof_2 = indexof([1, 2, 3], 3)
    keys_1 = jsonencode(keys({b = 1, a = 2, c = 3}))
    keys_2 = jsonencode(keys({}))
    keys_3 = jsonencode(keys(OBJ))
    values_1 = jsonencode(values({b = "x", a = "y"}))
    values_2 = jsonencode(values(OBJ))
    length_1 = length([1, 2, 3])
    length_2 = length([])
    length_3 = length(NUMS)
    lookup_1 = lookup({a = "ay", b = "bee"}, "a", "what?")
    lookup_2 = lookup({a = "ay", b = "bee"}, "c", "what?")
    merge_1 = jsonencode(merge({a = "b", c = "d"}, {e = "f", c = "z"}))
    merge_2 = jsonencode(merge({b = 1}, null, {a = [1]}))
    merge_3 = jsonencode(merge())
    range_1 = jsonencode(range(3))
    range_2 = jsonencode(range(1, 4))
    range_3 = jsonencode(range(1, 8, 2))
    range_4 = jsonencode(range(10, 5))
    range_5 = jsonencode(range(0))
    range_6 = jsonencode(range(-3))
    range_7 = jsonencode(range(0, 1, 0.25))
    reverselist_1 = jsonencode(reverselist([1, "b", null]))
    reverselist_2 = jsonencode(reverselist([]))
    slice_1 = jsonencode(slice(["a", "b", "c", "d"], 1, 3))
    slice_2 = jsonencode(slice(["a"], 1, 1))
    sort_1 = jsonencode(sort(["e", "d", "a", "x", "B", "é", "10", "9"]))
    sort_2 = jsonencode(sort([3, 1, 20]))
    sort_3 = jsonencode(sort([]))
    zipmap_1 = jsonencode(zipmap(["a", "b"], [1, 2]))
    zipmap_2 = jsonencode(zipmap([], []))
    zipmap_3 = jsonencode(zipmap(["k", "k"], ["first", "second"]))
    chunklist_1 = jsonencode(chunklist(["a", "b", "c", "d", "e"], 2))
    chunklist_2 = jsonencode(chunklist(["a", "b"], 0))
    chunklist_3 = jsonencode(chunklist([], 3))
  }
}

target "sets" {
  args = {
    setunion_1 = jsonencode(setunion(["b", "a"], ["c", "a"]))
    setunion_2 = jsonencode(setunion([3, 1], [2, 10]))
    setunion_3 = jsonencode(setunion([]))
    setintersection_1 = jsonencode(setintersection(["a", "b", "c"], ["b", "c", "d"], ["c", "b"]))
    setintersection_2 = jsonencode(setintersection(["a"], []))
    setsubtract_1 = jsonencode(setsubtract(["a", "b", "c"], ["a", "c"]))
    setsubtract_2 = jsonencode(setsubtract([3, 2, 1], []))
    setsymmetricdifference_1 = jsonencode(setsymmetricdifference(["a", "b"], ["b", "c"]))
    setsymmetricdifference_2 = jsonencode(setsymmetricdifference([1, 2], [2, 3], [3, 4]))
    sethaselement_1 = sethaselement(["a", "b"], "b")
    sethaselement_2 = sethaselement([], "b")
    setproduct_1 = jsonencode(setproduct(["a", "b"], ["x", "y"]))
    setproduct_2 = jsonencode(setproduct(["a"], []))
    setproduct_3 = jsonencode(setproduct([1, 2], ["x"], [true]))
  }
}

target "numbers" {
  args = {
    absolute_1 = absolute(-5)
    absolute_2 = absolute(3.25)
    absolute_3 = absolute(0)
    add_1 = add(1, 2)
    add_2 = add(-1.5, 0.25)
    add_3 = add(9007199254740993, 1)
    add_4 = add("2", 3)
    subtract_1 = subtract(10, 20)
    subtract_2 = subtract(2.5, 0.5)
    multiply_1 = multiply(6, 7)
    multiply_2 = multiply(-1.5, 4)
    multiply_3 = multiply(4294967296, 2147483648)
    divide_1 = divide(10, 4)
    divide_2 = divide(-9, 3)
    divide_3 = divide(1, 8)
    modulo_1 = modulo(10, 3)
    modulo_2 = modulo(-7, 3)
    modulo_3 = modulo(7, -3)
    modulo_4 = modulo(5.5, 2)
    modulo_5 = modulo(4, 0)
    negate_1 = negate(5)
    negate_2 = negate(-2.5)
    ceil_1 = ceil(1.2)
    ceil_2 = ceil(-1.2)
    ceil_3 = ceil(5)
    floor_1 = floor(1.8)
    floor_2 = floor(-1.2)
    floor_3 = floor(5)
    int_1 = int(1.9)
    int_2 = int(-1.9)
    int_3 = int(7)
    log_1 = log(8, 2)
    log_2 = log(100, 10)
    log_3 = log(1, 10)
    pow_1 = pow(2, 10)
    pow_2 = pow(2, 0.5)
    pow_3 = pow(2, -1)
    pow_4 = pow(2, 70)
    pow_5 = pow(0, 0)
    signum_1 = signum(-42)
    signum_2 = signum(0)
    signum_3 = signum(7)
    max_1 = max(12, 54, 3)
    max_2 = max(-1.5, -2)
    max_3 = max(NUMS...)
    min_1 = min(12, 54, 3)
    min_2 = min(-1.5, -2)
    min_3 = min(5)
    parseint_1 = parseint("100", 10)
    parseint_2 = parseint("FF", 16)
    parseint_3 = parseint("-10", 2)
    parseint_4 = parseint("zz", 36)
    parseint_5 = parseint("aA", 62)
    parseint_6 = parseint("9223372036854775807", 10)
    greaterthan_1 = greaterthan(2, 1)
    greaterthan_2 = greaterthan(1, 1)
    greaterthanorequalto_1 = greaterthanorequalto(1, 1)
    greaterthanorequalto_2 = greaterthanorequalto(0.5, 1)
    lessthan_1 = lessthan(-1, 1)
    lessthan_2 = lessthan(1, -1)
    lessthanorequalto_1 = lessthanorequalto(2, 2)
    lessthanorequalto_2 = lessthanorequalto(3, 2)
    equal_1 = equal(1, 1)
    equal_2 = equal("a", "b")
    equal_3 = equal(null, null)
    equal_4 = equal([1, "a"], [1, "a"])
    equal_5 = equal(1, "1")
    notequal_1 = notequal(1, 2)
    notequal_2 = notequal("a", "a")
    and_1 = and(true, false)
    and_2 = and(true, true)
    or_1 = or(false, false)
    or_2 = or(true, false)
    not_1 = not(true)
    not_2 = not(false)
    numbers_1 = 1.5
    numbers_2 = 3.0
    numbers_3 = 1e21
    numbers_4 = -0.001
    numbers_5 = 9223372036854775807
  }
}

target "encoding" {
  args = {
    base64encode_1 = base64encode("Hello World")
    base64encode_2 = base64encode("")
    base64encode_3 = base64encode("héllo ✓")
    base64decode_1 = base64decode("SGVsbG8gV29ybGQ=")
    base64decode_2 = base64decode("")
    base64decode_3 = base64decode(base64encode("héllo ✓"))
    urlencode_1 = urlencode("Hello World!")
    urlencode_2 = urlencode("a/b?c=d&e=f~_.-")
    urlencode_3 = urlencode("héllo")
    jsonencode_1 = jsonencode({b = "x", a = [1, 2.5, true, null], c = {z = {}, y = []}})
    jsonencode_2 = jsonencode("<tag> & \"quotes\" \u2028 é \t")
    jsonencode_3 = jsonencode(null)
    jsonencode_4 = jsonencode(-0.5)
    jsonencode_5 = jsonencode(1e21)
    jsondecode_1 = jsondecode("\"hello\"")
    jsondecode_2 = jsonencode(jsondecode("{\"b\": [1, 2.5, null, true], \"a\": {\"x\": \"y\"}}"))
    jsondecode_3 = jsondecode("42")
    jsondecode_4 = jsonencode(jsondecode("[]"))
    csvdecode_1 = jsonencode(csvdecode("a,b,c\n1,2,3\n4,5,6\n"))
    csvdecode_2 = jsonencode(csvdecode("name,note\n\"x, y\",\"say \"\"hi\"\"\"\n"))
    csvdecode_3 = jsonencode(csvdecode("only,header"))
  }
}

target "crypto" {
  args = {
    md5_1 = md5("")
    md5_2 = md5("hello world")
    md5_3 = md5("héllo")
    sha1_1 = sha1("")
    sha1_2 = sha1("hello world")
    sha256_1 = sha256("")
    sha256_2 = sha256("hello world")
    sha256_3 = sha256("✓")
    sha512_1 = sha512("")
    sha512_2 = sha512("hello world")
    uuidv5_1 = uuidv5("dns", "www.terraform.io")
    uuidv5_2 = uuidv5("url", "https://www.terraform.io/")
    uuidv5_3 = uuidv5("oid", "1.2.3")
    uuidv5_4 = uuidv5("x500", "CN=x")
    uuidv5_5 = uuidv5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "tada")
    rsadecrypt_1 = rsadecrypt("jd2fy5T8uJLdWAZwmffxM/TC+CGMAGvG6gvWclS8yiBISMaOoEiiKeqFM4j2fY1HNo0/oV1f1Ko8PWGg/JYgrVBGg1Sg73B2Zud9uGOlyWcGWk7SaJKV5ZGi3lWK6enaYylXYG4OebqUYOMQEfmiGNdh2YaLhZ7V/Mrnh9/VwJI=", KEY)
    bcrypt_1 = strlen(bcrypt("x", 4)) == 60
  }
}

target "network" {
  args = {
    cidrhost_1 = cidrhost("10.12.112.0/20", 16)
    cidrhost_2 = cidrhost("10.12.112.0/20", 268)
    cidrhost_3 = cidrhost("10.12.112.0/20", -1)
    cidrhost_4 = cidrhost("fd00:fd12:3456:7890:00a2::/72", 34)
    cidrhost_5 = cidrhost("192.168.1.77/24", 0)
    cidrnetmask_1 = cidrnetmask("172.16.0.0/12")
    cidrnetmask_2 = cidrnetmask("10.0.0.0/32")
    cidrnetmask_3 = cidrnetmask("0.0.0.0/0")
    cidrsubnet_1 = cidrsubnet("172.16.0.0/12", 4, 2)
    cidrsubnet_2 = cidrsubnet("10.1.2.0/24", 4, 15)
    cidrsubnet_3 = cidrsubnet("fd00:fd12:3456:7890::/56", 16, 162)
    cidrsubnet_4 = cidrsubnet("10.0.0.0/8", 0, 0)
    cidrsubnets_1 = jsonencode(cidrsubnets("10.1.0.0/16", 4, 4, 8, 4))
    cidrsubnets_2 = jsonencode(cidrsubnets("fd00:fd12:3456:7890::/56", 16, 16, 16, 32))
    cidrsubnets_3 = jsonencode(cidrsubnets("10.0.0.0/8"))
  }
}

target "time" {
  args = {
    formatdate_1 = formatdate("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01Z")
    formatdate_2 = formatdate("EEEE, MMMM D, YY 'at' H:m:s AA aa", "2018-01-02T03:04:05-08:00")
    formatdate_3 = formatdate("h'h''m'", "2018-01-02T23:12:01+05:30")
    formatdate_4 = formatdate("YYYY-MM-DD'T'hh:mm:ssZ ZZZZ ZZZZZ Z", "2020-12-31T23:59:59+01:00")
    formatdate_5 = formatdate("M/D EEE HH", "2024-02-29T00:00:00Z")
    formattimestamp_1 = formattimestamp("YYYY-MM-DD", "2024-03-05T07:08:09Z")
    formattimestamp_2 = formattimestamp("X", "2024-03-05T07:08:09Z")
    formattimestamp_3 = formattimestamp("YYYY-MM-DD hh:mm:ss", 1700000000)
    formattimestamp_4 = formattimestamp("X", 0)
    timeadd_1 = timeadd("2017-11-22T00:00:00Z", "10m")
    timeadd_2 = timeadd("2017-11-22T00:00:00Z", "-1h30m")
    timeadd_3 = timeadd("2017-11-22T00:00:00+02:00", "1.5h")
    timeadd_4 = timeadd("2017-11-22T23:59:59Z", "1s")
    timeadd_5 = timeadd("2017-11-22T00:00:00Z", "0")
    unixtimestampparse_1 = jsonencode(unixtimestampparse(1690328596))
    unixtimestampparse_2 = jsonencode(unixtimestampparse(0))
    unixtimestampparse_3 = jsonencode(unixtimestampparse(-86400))
    timestamp_1 = can(formatdate("YYYY", timestamp()))
  }
}

target "lazy" {
  args = {
    try_1 = try(OBJ.missing, "fallback")
    try_2 = try(OBJ.a, "fallback")
    try_3 = try(regex("[0-9]+", "abc"), "no digits")
    try_4 = try(undefined_variable, null, "x")
    try_5 = jsonencode(try([for k, v in OBJ : "${k}=${v}" if v != null], []))
    try_6 = tagged("APP", "1.0")
    can_1 = can(OBJ.missing)
    can_2 = can(OBJ.a)
    can_3 = can(regex("^v[0-9]", "v1.2"))
    can_4 = can(parseint("xyz", 10))
    convert_1 = jsonencode(convert([1, "a"], list(string)))
    convert_2 = convert(12, string)
    convert_3 = jsonencode(convert("5", number))
    convert_4 = jsonencode(convert({a = 1}, map(string)))
    convert_5 = jsonencode(convert(["b", "a", "b"], set(string)))
    convert_6 = jsonencode(convert("true", bool))
    convert_7 = jsonencode(convert({a = 1, b = "x"}, object({a = string, b = string})))
    convert_8 = jsonencode(convert([1, 2], tuple([string, number])))
    convert_9 = jsonencode(convert([], list(string)))
    convert_10 = jsonencode(convert(null, string))
    convert_11 = jsonencode(try(convert("x", number), "nope"))
    convert_12 = jsonencode(convert({a = [1]}, map(list(string))))
    convert_13 = jsonencode(convert(["a", 1], set(any)))
    try_7 = jsonencode(try({a = 1}.b, {a = 1}.a))
    try_8 = jsonencode(try(tonumber("x"), 0))
    can_5 = jsonencode(can([1, 2][5]))
    for_1 = jsonencode([for k, v in {b = 1, a = 2} : k])
    for_2 = jsonencode({for k, v in {b = "x", a = "y"} : v => k})
    for_3 = jsonencode({for s in ["a", "bb", "cc"] : strlen(s) => s...})
    for_4 = jsonencode([for i, v in ["x", "y"] : "${i}:${v}"])
    cond_1 = true ? "yes" : regex("[", "never evaluated")
  }
  tags = [for k, v in {b = 1, a = 2} : "r/${k}:${v}"]
}

target "misc" {
  args = {
    semvercmp_1 = semvercmp("1.2.3", ">= 1.2.0")
    semvercmp_2 = semvercmp("1.2.3", "< 1.2.0")
    semvercmp_3 = semvercmp("v1.2.3", "~1.2")
    semvercmp_4 = semvercmp("1.3.0", "~1.2.0")
    semvercmp_5 = semvercmp("2.0.0", "^1.2")
    semvercmp_6 = semvercmp("0.2.5", "^0.2.3")
    semvercmp_7 = semvercmp("1.2.3-beta.1", ">= 1.2.0")
    semvercmp_8 = semvercmp("1.2.3-beta.1", ">= 1.2.3-alpha")
    semvercmp_9 = semvercmp("1.4", "1.2 - 1.4.5")
    semvercmp_10 = semvercmp("3.0.0", "1.x || >= 2.5, < 4")
    semvercmp_11 = semvercmp("1.2.3", "!= 1.2.3")
    semvercmp_12 = semvercmp("1.5.0", "1.x")
    semvercmp_13 = semvercmp("1", "=1.0.0")
    semvercmp_14 = semvercmp("1.2.5", "~> 1.2")
    semvercmp_15 = semvercmp("1.3.0", "~> 1.2")
    semvercmp_16 = semvercmp("1.2.0-rc.1", ">=1.2.0-0")
    semvercmp_17 = semvercmp("1.2.9", "1.2.x")
    semvercmp_18 = semvercmp("5.0.0", "*")
    semvercmp_19 = semvercmp("1.2.0", "=1.2")
    semvercmp_20 = semvercmp("1.5.0", "1.2.3 - 2")
    semvercmp_21 = semvercmp("2.9.9", "1.2.3 - 2")
    semvercmp_22 = semvercmp("3.0.0", "1.2.3 - 2")
    semvercmp_23 = semvercmp("0.0.3", "^0.0.3")
    semvercmp_24 = semvercmp("0.0.4", "^0.0.3")
    semvercmp_25 = semvercmp("1.5.0", "!= 1.x")
    semvercmp_26 = semvercmp("2.0.0", "!= 1.x")
    semvercmp_27 = semvercmp("2.0.0", "> 1.x")
    semvercmp_28 = semvercmp("1.9.0", "> 1.x")
    semvercmp_29 = semvercmp("1.2.9", "<= 1.2.x")
    semvercmp_30 = semvercmp("1.3.0", "<= 1.2.x")
    semvercmp_31 = semvercmp("1.2.3", "1.2.3, 1.2.3")
    semvercmp_32 = semvercmp("1.2.3", ">1.0 <2.0")
    semvercmp_33 = semvercmp("1.2.3-alpha.10", "> 1.2.3-alpha.9")
    semvercmp_34 = semvercmp("1.2.3-alpha.beta", "> 1.2.3-alpha.1")
    semvercmp_35 = semvercmp("v2", ">= 2")
    semvercmp_36 = semvercmp("1.0.0+build", "= 1.0.0")
    semvercmp_37 = semvercmp("0.1.2", "~0")
    semvercmp_38 = semvercmp("1.1.1", "~1")
    semvercmp_39 = semvercmp("0.2.0", "^0.1")
    semvercmp_40 = semvercmp("1.2.3", "<1.2.3-0")
    homedir_1 = homedir()
    empty_1 = EMPTY
    empty_2 = coalesce(EMPTY, "x")
    null_1 = null
  }
}

target "edges" {
  args = {
    variable_1 = FROM_FUNCTIONS
    nested_1 = jsonencode(flatten(NESTED.list))
    nested_2 = jsonencode(merge(NESTED.map, { inner = { other = true } }))
    nested_3 = jsonencode(lookup(NESTED.map, "inner", {}))
    nested_4 = jsonencode(values(NESTED))
    nested_5 = jsonencode([for k, v in NESTED : k])
    nested_6 = jsonencode(setunion([[1], [2]], [[1]]))
    null_1 = jsonencode(coalesce(null, null, "x"))
    null_2 = jsonencode(merge(null))
    null_3 = equal(null, "")
    null_4 = jsonencode(concat([null], [null]))
    null_5 = jsonencode(distinct([null, null, "a"]))
    unicode_1 = jsonencode(sort(["zebra", "Äpfel", "apple", "ähnlich", "Zoo"]))
    unicode_2 = substr("日本語のテキスト", -4, 2)
    unicode_3 = format("[%-6s][%6s]", "日本", "ü")
    unicode_4 = jsonencode(regexall("\\p{Greek}+", "abc αβγ def δε"))
    unicode_5 = title("ǆemal ñandú")
    unicode_9 = lower("İSTANBUL")
    unicode_10 = format("%5t|%-5v|%05s|%.2s|%3.1q", true, 1, "a", "héllo", "xyz")
    unicode_8 = title("a—b a·b «c» x\u00a0y")
    unicode_6 = urlencode("日本")
    unicode_7 = md5("日本語")
    big_1 = parseint("18446744073709551615", 10)
    big_2 = add(18446744073709551615, 0)
    big_3 = subtract(-9223372036854775807, 1)
    big_4 = jsonencode(range(-1, -2.5, -0.5))
    big_5 = max(18446744073709551615, 1)
    big_6 = format("%d|%x", 18446744073709551615, 18446744073709551615)
    user_1 = jsonencode(versions("v", "1.0", "v2.1", "latest", "3"))
    user_2 = jsonencode(versions("x"))
  }
}

target "templates" {
  args = {
    for_directive_1 = "%{ for x in split(",", "b,a") ~}${x}-%{ endfor ~}!"
    heredoc_1 = <<-EOT
      ${try(nope, "h")}
      ${upper("line2")}
    EOT
    if_directive_1 = "${try(nope, "x")} %{ if can(nope) }yes%{ else }no%{ endif }"
    for_1 = jsonencode({ for k, v in { b = 1, a = 2 } : k => v if v > 1 })
    for_2 = join(",", [for i, x in ["b", "a"] : "${i}${x}"])
    splat_1 = jsonencode([{ n = "a" }, { n = "b" }][*].n)
    convert_1 = upper(true)
    element_1 = element(["a", "b", "c"], 1.0)
    number_1 = "${1.5e21}"
    number_2 = "x${true}y${2.50}z n${1e-7}"
    object_for_1 = "%{ for k, v in { b = 1, a = 2 } }${k}=${v};%{ endfor }"
  }
}
