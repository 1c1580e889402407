ARG BASE
FROM ${BASE}
ENV A b \
  C d
CMD echo \
  hi
