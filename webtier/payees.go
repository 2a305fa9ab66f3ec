package webtier

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"bankwire/proto/wire"

	"github.com/go-chi/chi/v5"
)

const maxNicknameRunes = 64

type payeesData struct {
	Payees     []wire.Payee
	Add        *form
	RenameID   int64 // the payee whose rename failed
	RenameForm *form
}

func (s *Server) renderPayees(w http.ResponseWriter, r *http.Request, status int, d payeesData) {
	sess := sessionFrom(r.Context())
	var resp wire.PayeesResponse
	if err := s.call(r, wire.OpPayeesList, wire.SessionRequest{Session: sess.Token}, &resp); err != nil {
		s.fail(w, r, err)
		return
	}
	d.Payees = resp.Payees
	if d.Add == nil {
		d.Add = newForm()
	}
	if d.RenameForm == nil {
		d.RenameForm = newForm()
	}
	s.render(w, r, status, "payees", view{Title: "Payees", Nav: "payees", Data: d})
}

func (s *Server) payees(w http.ResponseWriter, r *http.Request) {
	s.renderPayees(w, r, http.StatusOK, payeesData{})
}

func nicknameProblem(nick string, clean bool) string {
	switch {
	case !clean:
		return "The nickname contains characters that are not allowed."
	case nick == "":
		return "Enter a nickname, like “Rent” or “Bob”."
	case utf8.RuneCountInString(nick) > maxNicknameRunes:
		return "Keep the nickname to 64 characters or fewer."
	}
	return ""
}

func (s *Server) payeeAdd(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sess := sessionFrom(r.Context())
	f := newForm()
	nick, clean := field(r, "nickname")
	number, _ := field(r, "number")
	f.Values["nickname"], f.Values["number"] = nick, number
	if p := nicknameProblem(nick, clean); p != "" {
		f.fail("nickname", p)
	}
	switch {
	case number == "":
		f.fail("number", "Enter the payee’s account number.")
	case !plausibleAccountNumber(number):
		f.fail("number", "That is not a valid account number.")
	}
	if !f.Invalid() {
		var resp wire.PayeeResponse
		err := s.call(r, wire.OpPayeeAdd, wire.PayeeAddRequest{
			SessionRequest: wire.SessionRequest{Session: sess.Token}, Nickname: nick, Number: number,
		}, &resp)
		if err == nil {
			s.setFlash(w, "payee_added")
			http.Redirect(w, r, "/payees", http.StatusSeeOther)
			return
		}
		if !f.userError(err, map[string]string{"nickname": "nickname", "number": "number"}) {
			s.fail(w, r, err)
			return
		}
	}
	s.renderPayees(w, r, http.StatusUnprocessableEntity, payeesData{Add: f})
}

func payeeID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	return id, err == nil && id > 0
}

func (s *Server) payeeRename(w http.ResponseWriter, r *http.Request) {
	id, ok := payeeID(r)
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	sess := sessionFrom(r.Context())
	f := newForm()
	nick, clean := field(r, "nickname")
	f.Values["nickname"] = nick
	if p := nicknameProblem(nick, clean); p != "" {
		f.fail("nickname", p)
	}
	if !f.Invalid() {
		var resp wire.PayeeResponse
		err := s.call(r, wire.OpPayeeRename, wire.PayeeRenameRequest{
			SessionRequest: wire.SessionRequest{Session: sess.Token}, ID: id, Nickname: nick,
		}, &resp)
		if err == nil {
			s.setFlash(w, "payee_renamed")
			http.Redirect(w, r, "/payees", http.StatusSeeOther)
			return
		}
		if wire.ErrorCode(err) == wire.NotFound {
			s.errorPage(w, r, http.StatusNotFound, "")
			return
		}
		if !f.userError(err, map[string]string{"nickname": "nickname"}) {
			s.fail(w, r, err)
			return
		}
	}
	s.renderPayees(w, r, http.StatusUnprocessableEntity, payeesData{RenameID: id, RenameForm: f})
}

func (s *Server) payeeDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := payeeID(r)
	if !ok {
		s.errorPage(w, r, http.StatusNotFound, "")
		return
	}
	sess := sessionFrom(r.Context())
	err := s.call(r, wire.OpPayeeDelete, wire.PayeeDeleteRequest{
		SessionRequest: wire.SessionRequest{Session: sess.Token}, ID: id,
	}, &wire.Empty{})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.setFlash(w, "payee_deleted")
	http.Redirect(w, r, "/payees", http.StatusSeeOther)
}
