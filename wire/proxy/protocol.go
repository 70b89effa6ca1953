package proxy

// Message type bytes, named per direction: the same byte means different
// things from a client and from a server ('C' is Close from a client and
// CommandComplete from a server), so they never share a name.
const (
	// Frontend (client to server).
	feBind         = 'B'
	feClose        = 'C'
	feCopyData     = 'd'
	feCopyDone     = 'c'
	feCopyFail     = 'f'
	feDescribe     = 'D'
	feExecute      = 'E'
	feFlush        = 'H'
	feFunctionCall = 'F'
	feParse        = 'P'
	feQuery        = 'Q'
	feSync         = 'S'
	feTerminate    = 'X'
	fePassword     = 'p' // PasswordMessage, SASLInitialResponse, SASLResponse

	// Backend (server to client).
	beAuthentication        = 'R'
	beBackendKeyData        = 'K'
	beBindComplete          = '2'
	beCloseComplete         = '3'
	beCommandComplete       = 'C'
	beCopyBothResponse      = 'W'
	beCopyData              = 'd'
	beCopyDone              = 'c'
	beCopyInResponse        = 'G'
	beCopyOutResponse       = 'H'
	beDataRow               = 'D'
	beEmptyQueryResponse    = 'I'
	beErrorResponse         = 'E'
	beFunctionCallResponse  = 'V'
	beNoData                = 'n'
	beNoticeResponse        = 'N'
	beNotificationResponse  = 'A'
	beParameterDescription  = 't'
	beParameterStatus       = 'S'
	beParseComplete         = '1'
	bePortalSuspended       = 's'
	beReadyForQuery         = 'Z'
	beRowDescription        = 'T'
	beNegotiateProtocolVers = 'v'
)

// Transaction status bytes of ReadyForQuery.
const (
	txIdle   = 'I'
	txInTx   = 'T'
	txFailed = 'E'
)
