# Stand-in for mendhak/http-https-echo where no image registry can be reached: echo.py on the
# Debian base of standins.sh (which includes python3).
ARG BASE
FROM ${BASE}
COPY echo.py /opt/echo/echo.py
ENV HTTP_PORT=8080
CMD ["python3", "/opt/echo/echo.py"]
