#!/bin/sh
# The bucket, then one MinIO user per service with a policy on its own prefix of the bucket:
#   MINIO_MLFLOW_USER  the MLflow server: read/write s3://$S3_BUCKET/mlflow/* (artifacts, --serve-artifacts)
#   MINIO_WORKER_USER  the worker's flow runs: read s3://$S3_BUCKET/* (s3:// sources),
#                      write s3://$S3_BUCKET/outputs/* (quarantined rows)
# The prediction server gets no S3 key at all (its models come through the MLflow server).
#
# Compose's one-shot `minio-init` job runs it on every `up` with the root credentials, which no other service
# holds. It is idempotent: policies are rewritten, users' secrets set again (rotate one by editing infra/.env
# and running `up`), and a policy is attached only where it is not yet (`mc admin policy attach` fails on a
# policy already attached, minio/mc#4863).
set -eu

fail() {
    echo "minio-init: $*" >&2
    exit 1
}

for variable in MINIO_ROOT_USER MINIO_ROOT_PASSWORD S3_BUCKET MINIO_MLFLOW_USER MINIO_MLFLOW_PASSWORD \
    MINIO_WORKER_USER MINIO_WORKER_PASSWORD; do
    eval "value=\${$variable:-}"
    case "$value" in
        "") fail "$variable is not set (infra/.env)" ;;
        *[Cc][Hh][Aa][Nn][Gg][Ee]-[Mm][Ee]*)
            fail "$variable is still the placeholder from infra/.env.example: set a random one (openssl rand -hex 24)" ;;
    esac
done
[ "$MINIO_MLFLOW_USER" != "$MINIO_ROOT_USER" ] && [ "$MINIO_WORKER_USER" != "$MINIO_ROOT_USER" ] \
    || fail "MINIO_MLFLOW_USER and MINIO_WORKER_USER must differ from MINIO_ROOT_USER"

bucket="arn:aws:s3:::$S3_BUCKET"
policies="${TMPDIR:-/tmp}"

mc alias set local "${MINIO_ENDPOINT:-http://minio:9000}" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$S3_BUCKET"

grant() {  # user, secret, policy name, policy document
    printf '%s\n' "$4" >"$policies/$3.json"
    mc admin policy create local "$3" "$policies/$3.json"
    mc admin user add local "$1" "$2"
    case "$(mc admin policy entities local --user "$1")" in
        *"$3"*) ;;
        *) mc admin policy attach local "$3" --user "$1" ;;
    esac
}

grant "$MINIO_MLFLOW_USER" "$MINIO_MLFLOW_PASSWORD" domainflow-mlflow '{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": ["'"$bucket"'"]},
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["'"$bucket"'"],
     "Condition": {"StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}}},
    {"Effect": "Allow",
     "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts"],
     "Resource": ["'"$bucket"'/mlflow/*"]}
  ]
}'

grant "$MINIO_WORKER_USER" "$MINIO_WORKER_PASSWORD" domainflow-worker '{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Resource": ["'"$bucket"'"]},
    {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["'"$bucket"'/*"]},
    {"Effect": "Allow",
     "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
     "Resource": ["'"$bucket"'/outputs/*"]}
  ]
}'

echo "minio-init: bucket $S3_BUCKET; users $MINIO_MLFLOW_USER (mlflow/*) and $MINIO_WORKER_USER (read, outputs/*)"
