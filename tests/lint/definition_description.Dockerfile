# check=experimental=InvalidDefinitionDescription
# BASE the image to start from
ARG BASE
# a stage that builds
FROM ${BASE} AS build
RUN true
# VERSION the version
ARG VERSION=1
# not a description
ARG A=1 B=2

# build2 the second
FROM ${BASE} AS build2
