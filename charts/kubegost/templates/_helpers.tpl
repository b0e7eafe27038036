{{/* Name prefix of every object: the release name, with "-kubegost" unless it has it. */}}
{{- define "kubegost.fullname" -}}
{{- if contains "kubegost" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kubegost" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubegost.labels" -}}
app.kubernetes.io/name: kubegost
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubegost.selectorLabels" -}}
app.kubernetes.io/name: kubegost
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubegost.serviceAccount" -}}
{{- printf "%s-operator" (include "kubegost.fullname" .) -}}
{{- end -}}
