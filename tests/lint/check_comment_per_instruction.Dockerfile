ARG BASE
FROM ${BASE}
# check=skip=JSONArgsRecommended
CMD echo hi
ENTRYPOINT echo hi
# this one stays
# check=skip=LegacyKeyValueFormat
ENV A b
