# check=skip=JSONArgsRecommended,MaintainerDeprecated
ARG BASE
FROM ${BASE}
MAINTAINER me
CMD echo hi
ENV A b
