arg BASE
from ${BASE} as build
run true
cmd echo hi
FROM build
