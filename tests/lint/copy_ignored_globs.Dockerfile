ARG BASE
FROM ${BASE}
COPY *.log /logs/
COPY --parents ./build/out /o
ADD https://example.com/file.log /f
COPY ./docs/../secret.txt /s
FROM ${BASE}
COPY --from=0 ignored.log /x
