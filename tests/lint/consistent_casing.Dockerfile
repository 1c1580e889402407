ARG BASE
FROM ${BASE}
run true
RUN true
Copy a /a
