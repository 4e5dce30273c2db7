package atlassim

import (
	"fmt"
	"net/http"

	"github.com/backupd/backupd/internal/atlas"
)

// Error codes the simulator answers with that internal/atlas/types.go does
// not (yet) name. Sources are in docs/simulator.md.
const (
	// CodeFlexInClusterAPI is what Atlas answers (400) when a flex cluster is
	// addressed under /clusters; seen in the Terraform provider and Atlas CLI.
	CodeFlexInClusterAPI = "CANNOT_USE_FLEX_CLUSTER_IN_CLUSTER_API"
	// CodeNonFlexInFlexAPI is the converse (400): a dedicated cluster under /flexClusters.
	CodeNonFlexInFlexAPI = "CANNOT_USE_NON_FLEX_CLUSTER_IN_FLEX_API"
	// CodeIncorrectBackupEndpoint (400, in Atlas's error-code list) answers a
	// replica-set snapshot endpoint used for a sharded snapshot and vice versa.
	CodeIncorrectBackupEndpoint = "INCORRECT_BACKUP_API_ENDPOINT"
	// CodeRestoreIncompleteSnapshot (409) answers a restore of a flex snapshot
	// that is not COMPLETED (Atlas's code for the dedicated-cluster analogue).
	CodeRestoreIncompleteSnapshot = "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT"
	// CodeInvalidJSON (400, Atlas's list) answers a body that is not JSON.
	CodeInvalidJSON = "INVALID_JSON"
	// CodeVersionGone (410) answers a media type version past its sunset date.
	CodeVersionGone = "VERSION_GONE"
	// CodeUnsupportedMediaType (415) answers a POST without a versioned Content-Type.
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	// CodeMethodNotAllowed (405) answers a known path with the wrong method.
	CodeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// CodeExportFailed is the stateReason.errorCode of an injected export failure.
	CodeExportFailed = "EXPORT_FAILED"
)

// apiError is an Atlas ApiError before it is written.
type apiError struct {
	status int
	code   string
	detail string
	params []any
	fields []atlas.FieldViolation
	header http.Header
}

func (e *apiError) body() atlas.ErrorBody {
	b := atlas.ErrorBody{
		Error:      e.status,
		ErrorCode:  e.code,
		Detail:     e.detail,
		Reason:     http.StatusText(e.status),
		Parameters: e.params,
	}
	if b.Parameters == nil {
		b.Parameters = []any{}
	}
	if len(e.fields) > 0 {
		b.BadRequestDetail = &atlas.BadRequestDetail{Fields: e.fields}
	}
	return b
}

func newErr(status int, code, detail string, params ...any) *apiError {
	return &apiError{status: status, code: code, detail: detail, params: params}
}

// errNoCloudBackup answers a backup call on a shared or free tier.
func errNoCloudBackup(spec ClusterSpec) *apiError {
	return newErr(http.StatusBadRequest, atlas.CodeProviderBackupNotSupported,
		fmt.Sprintf("Cloud backup is not supported for cluster %s of tier %s; it needs M10 or larger.", spec.Name, spec.Tier), spec.Name)
}

func errGroupNotFound(id string) *apiError {
	return newErr(http.StatusNotFound, atlas.CodeGroupNotFound, fmt.Sprintf("No group with ID %s exists.", id), id)
}

func errClusterNotFound(name, group string) *apiError {
	return newErr(http.StatusNotFound, atlas.CodeClusterNotFound, fmt.Sprintf("No cluster named %s exists in group %s.", name, group), name, group)
}

func errSnapshotNotFound(id, cluster string) *apiError {
	return newErr(http.StatusNotFound, atlas.CodeSnapshotNotFound, fmt.Sprintf("No snapshot with ID %s exists for cluster %s.", id, cluster), id, cluster)
}

func errBucketNotFound(id string) *apiError {
	// Atlas's documented wording, double negative included.
	return newErr(http.StatusNotFound, atlas.CodeExportBucketNotFound, fmt.Sprintf("No export Bucket with ID %s does not exist.", id), id)
}

func errResourceNotFound(what string) *apiError {
	return newErr(http.StatusNotFound, atlas.CodeResourceNotFound, fmt.Sprintf("Cannot find resource %s.", what), what)
}

// errRestoreNotFound is the answer to a restore job id the cluster has not.
func errRestoreNotFound(id string) *apiError { return errResourceNotFound("restore job " + id) }

func errInvalidPathParam(name, value string) *apiError {
	return newErr(http.StatusBadRequest, atlas.CodeInvalidPathParameter,
		fmt.Sprintf("Invalid path parameter %s: %q does not match the required pattern.", name, value), name, value)
}

func errValidation(fields ...atlas.FieldViolation) *apiError {
	e := newErr(http.StatusBadRequest, atlas.CodeValidationError, "The request failed validation; see badRequestDetail.fields.")
	e.fields = fields
	return e
}

func errMethodNotAllowed(method, path string) *apiError {
	return newErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("Method %s is not allowed on %s.", method, path), method, path)
}

func errUnauthorized() *apiError {
	return newErr(http.StatusUnauthorized, atlas.CodeUnauthorized, "You are not authorized for this resource: send a valid Bearer access token or HTTP Digest API key credentials.")
}

func errNotAcceptable() *apiError {
	return newErr(http.StatusNotAcceptable, atlas.CodeInvalidVersionDate, "Invalid accept header or version date.")
}
