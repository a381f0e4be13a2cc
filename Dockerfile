FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml ./
COPY . .
RUN pip install --no-cache-dir -e . gunicorn==23.0.0
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
