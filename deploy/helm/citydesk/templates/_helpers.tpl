{{/* Names, labels and the pod template shared by every service. */}}

{{- define "citydesk.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "citydesk.labels" -}}
{{ include "citydesk.releaseSelector" . }}
{{ include "citydesk.commonLabels" . }}
{{- end -}}

{{/* Labels every object carries besides its selector labels. */}}
{{- define "citydesk.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: citydesk
{{- end -}}

{{/* Selector labels of every pod of the release. */}}
{{- define "citydesk.releaseSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one service's pods; dict root, service, component (api|worker). */}}
{{- define "citydesk.selector" -}}
{{ include "citydesk.releaseSelector" .root }}
citydesk.io/service: {{ .service }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "citydesk.serviceAccountName" -}}
{{- default (include "citydesk.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "citydesk.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "citydesk.orgTree" -}}
{{- if .Values.orgTree -}}{{ .Values.orgTree }}{{- else -}}{{ .Files.Get "files/city.yaml" }}{{- end -}}
{{- end -}}

{{/* A service's seed config: values, else files/<service>-config.yaml; dict root, name, svc. */}}
{{- define "citydesk.serviceConfig" -}}
{{- .svc.config.content | default (.root.Files.Get (printf "files/%s-config.yaml" .name)) -}}
{{- end -}}

{{- define "citydesk.kafkaUsesSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "citydesk.kafkaUsesTls" -}}
{{- if and (has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL")) .Values.kafka.tls.caSecret -}}true{{- end -}}
{{- end -}}

{{/*
A Deployment for one service; dict root, name (the service), svc (its values),
component (api|worker|web), spec (the component's values), runConsumers (bool),
backend (bool: reaches Kafka, MongoDB and S3 and may have a seed config; false for the
console) and env (a dict of plain variables that svc.env and extraEnv override).
*/}}
{{- define "citydesk.deployment" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
{{- $fullname := include "citydesk.fullname" $root -}}
{{- $selector := dict "root" $root "service" .name "component" .component -}}
{{- $config := "" -}}
{{- if .backend -}}
{{- $config = include "citydesk.serviceConfig" . -}}
{{- end -}}
{{- $kafkaTls := and .backend (include "citydesk.kafkaUsesTls" $root) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ printf "%s-%s-%s" $fullname .name .component | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "citydesk.labels" $root | nindent 4 }}
    citydesk.io/service: {{ .name }}
    app.kubernetes.io/component: {{ .component }}
spec:
  {{- if not .spec.autoscaling.enabled }}
  replicas: {{ .spec.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "citydesk.selector" $selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "citydesk.selector" $selector | nindent 8 }}
        {{- include "citydesk.commonLabels" $root | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "citydesk.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $values.serviceAccount.automountServiceAccountToken }}
      {{- with $values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .name }}
          image: {{ include "citydesk.image" $root | quote }}
          imagePullPolicy: {{ $values.image.pullPolicy }}
          command: ["citydesk", "serve", {{ .name | quote }}, "--host", "0.0.0.0", "--port", {{ .svc.port | toString | quote }}]
          ports:
            - name: http
              containerPort: {{ .svc.port }}
              protocol: TCP
          env:
            - name: CITYDESK_ENVIRONMENT
              value: {{ $values.environment | quote }}
            - name: CITYDESK_LOG_LEVEL
              value: {{ $values.logLevel | quote }}
            - name: CITYDESK_ORG_FILE
              value: /etc/citydesk/org/city.yaml
            {{- if .backend }}
            - name: CITYDESK_RUN_CONSUMERS
              value: {{ .runConsumers | quote }}
            - name: CITYDESK_KAFKA_BOOTSTRAP
              value: {{ $values.kafka.bootstrap | quote }}
            - name: CITYDESK_KAFKA_SECURITY_PROTOCOL
              value: {{ $values.kafka.securityProtocol | quote }}
            {{- if $values.kafka.allowPlaintext }}
            - name: CITYDESK_KAFKA_ALLOW_PLAINTEXT
              value: "true"
            {{- end }}
            - name: CITYDESK_KAFKA_PARTITIONS
              value: {{ $values.kafka.partitions | quote }}
            - name: CITYDESK_KAFKA_CREATE_TOPICS
              value: {{ $values.kafka.topics.create | quote }}
            - name: CITYDESK_KAFKA_REPLICATION_FACTOR
              value: {{ $values.kafka.topics.replicationFactor | quote }}
            - name: CITYDESK_KAFKA_MIN_INSYNC_REPLICAS
              value: {{ $values.kafka.topics.minInsyncReplicas | quote }}
            - name: CITYDESK_KAFKA_RETENTION_MS
              value: {{ $values.kafka.topics.retentionMs | quote }}
            {{- if include "citydesk.kafkaUsesSasl" $root }}
            {{- $kafkaUser := $values.kafka.sasl.username }}
            {{- $kafkaSecret := $values.kafka.sasl.existingSecret }}
            {{- if $values.kafka.perServiceUsers }}
            {{- $kafkaUser = printf "%s%s" $values.kafka.userPrefix .name }}
            {{- $kafkaSecret = $kafkaUser }}
            {{- end }}
            - name: CITYDESK_KAFKA_SASL_MECHANISM
              value: {{ $values.kafka.saslMechanism | quote }}
            - name: CITYDESK_KAFKA_SASL_USERNAME
              value: {{ $kafkaUser | quote }}
            - name: CITYDESK_KAFKA_SASL_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {{ $kafkaSecret }}
                  key: {{ $values.kafka.sasl.passwordKey }}
            {{- end }}
            - name: CITYDESK_BUS_KEYRING_FILE
              value: /etc/citydesk/bus/keyring.yaml
            - name: CITYDESK_BUS_SIGNING_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ printf "%s%s" $values.bus.signingKeySecretPrefix .name }}
                  key: {{ $values.bus.signingKeyKey }}
            {{- if $kafkaTls }}
            - name: CITYDESK_KAFKA_CA_FILE
              value: /etc/citydesk/kafka-ca/{{ $values.kafka.tls.caKey }}
            {{- end }}
            - name: CITYDESK_MONGO_DATABASE_PREFIX
              value: {{ $values.databasePrefix | quote }}
            - name: CITYDESK_MONGO_URI
              valueFrom:
                secretKeyRef:
                  name: {{ $values.mongodb.existingSecret }}
                  key: {{ $values.mongodb.uriKey }}
            {{- if .svc.usesS3 }}
            - name: CITYDESK_S3_ENDPOINT
              value: {{ $values.s3.endpoint | quote }}
            - name: CITYDESK_S3_SECURE
              value: {{ $values.s3.secure | quote }}
            - name: CITYDESK_S3_REGION
              value: {{ $values.s3.region | quote }}
            - name: CITYDESK_S3_ACCESS_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $values.s3.existingSecret }}
                  key: {{ $values.s3.accessKeyKey }}
            - name: CITYDESK_S3_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ $values.s3.existingSecret }}
                  key: {{ $values.s3.secretKeyKey }}
            {{- end }}
            {{- end }}
            - name: CITYDESK_JWT_ISSUER
              value: {{ $values.auth.issuer | quote }}
            - name: CITYDESK_JWT_AUDIENCE
              value: {{ $values.auth.audience | quote }}
            {{- with $values.auth.jwksUrl }}
            - name: CITYDESK_JWT_JWKS_URL
              value: {{ . | quote }}
            {{- end }}
            {{- with $values.auth.publicKey }}
            - name: CITYDESK_JWT_PUBLIC_KEY
              value: {{ . | quote }}
            {{- end }}
            {{- if and $config .svc.config.env }}
            - name: {{ .svc.config.env }}
              value: /etc/citydesk/{{ .name }}/config.yaml
            {{- end }}
            {{- range $key, $value := merge (dict) .svc.env $values.extraEnv (default (dict) .env) }}
            - name: {{ $key }}
              value: {{ $value | quote }}
            {{- end }}
          {{- with concat (default (list) $values.extraEnvFrom) (default (list) .svc.envFrom) }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: {{ $values.probes.startup.periodSeconds }}
            timeoutSeconds: {{ $values.probes.startup.timeoutSeconds }}
            failureThreshold: {{ $values.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: {{ $values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: {{ $values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $values.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml .spec.resources | nindent 12 }}
          securityContext:
            {{- toYaml $values.securityContext | nindent 12 }}
          volumeMounts:
            - name: org
              mountPath: /etc/citydesk/org
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if .backend }}
            - name: bus-keyring
              mountPath: /etc/citydesk/bus
              readOnly: true
            {{- end }}
            {{- if $kafkaTls }}
            - name: kafka-ca
              mountPath: /etc/citydesk/kafka-ca
              readOnly: true
            {{- end }}
            {{- if $config }}
            - name: config
              mountPath: /etc/citydesk/{{ .name }}
              readOnly: true
            {{- end }}
      volumes:
        - name: org
          configMap:
            name: {{ $fullname }}-org
        - name: tmp
          emptyDir:
            sizeLimit: {{ $values.tmpSizeLimit }}
        {{- if .backend }}
        - name: bus-keyring
          configMap:
            name: {{ $fullname }}-bus-keyring
        {{- end }}
        {{- if $kafkaTls }}
        - name: kafka-ca
          secret:
            secretName: {{ $values.kafka.tls.caSecret }}
            items:
              - key: {{ $values.kafka.tls.caKey }}
                path: {{ $values.kafka.tls.caKey }}
        {{- end }}
        {{- if $config }}
        - name: config
          configMap:
            name: {{ $fullname }}-{{ .name }}-config
        {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
