#!/usr/bin/env bash
# Starts the servers the backend tests use when they are not running:
# Redis 127.0.0.1:6379, PostgreSQL 127.0.0.1:5432 (user postgres, db test),
# NATS with JetStream 127.0.0.1:4222, Mosquitto (MQTT) 127.0.0.1:1883 and
# RabbitMQ 127.0.0.1:5672 (guest/guest).
# Tests never skip a backend: if a server cannot be started, this fails.
set -euo pipefail

log() { printf '\033[1mservices:\033[0m %s\n' "$*" >&2; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() {
  local name=$1 port=$2 tries=${3:-50}
  for _ in $(seq 1 "$tries"); do up "$port" && return 0; sleep 0.2; done
  echo "services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

if ! up 6379; then
  log "starting Redis"
  if ! command -v redis-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server
  fi
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 6379
fi

if ! up 5432; then
  log "starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && apt-get install -y -qq postgresql
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for PostgreSQL 5432
fi
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
  log "creating PostgreSQL database test"
  psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
fi

if ! up 4222; then
  log "starting NATS with JetStream"
  if ! command -v nats-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nats-server
  fi
  mkdir -p /var/lib/nats-server
  # nats-server has no daemon mode: detached, its log in a file.
  setsid nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server \
    -l /var/log/nats-server.log </dev/null >/dev/null 2>&1 &
  wait_for NATS 4222
fi

if ! up 1883; then
  log "starting Mosquitto"
  if ! command -v mosquitto >/dev/null; then
    apt-get update -qq && apt-get install -y -qq mosquitto
  fi
  # Mosquitto 2 without a listener line serves anonymous clients on the
  # loopback, port 1883; the package's configuration has none.
  mkdir -p /run/mosquitto /var/lib/mosquitto /var/log/mosquitto
  chown mosquitto: /run/mosquitto /var/lib/mosquitto /var/log/mosquitto 2>/dev/null || true
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_for Mosquitto 1883
fi

if ! up 5672; then
  log "starting RabbitMQ"
  if ! command -v rabbitmq-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq rabbitmq-server
  fi
  # A container's host name may not resolve: the node is named after
  # localhost, and listens on the loopback only.
  mkdir -p /etc/rabbitmq
  if ! grep -qs '^NODENAME=' /etc/rabbitmq/rabbitmq-env.conf; then
    printf '%s\n' 'NODENAME=rabbit@localhost' 'ERL_EPMD_ADDRESS=127.0.0.1' \
      'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"' \
      >>/etc/rabbitmq/rabbitmq-env.conf
  fi
  if [ ! -s /etc/rabbitmq/rabbitmq.conf ]; then
    echo 'listeners.tcp.local = 127.0.0.1:5672' >/etc/rabbitmq/rabbitmq.conf
  fi
  # The package's init script (no systemd here); the broker takes a while.
  if ! up 5672; then
    service rabbitmq-server start >/dev/null || true
  fi
  wait_for RabbitMQ 5672 300
  rabbitmqctl -q await_startup
fi
