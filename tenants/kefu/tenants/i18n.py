"""Page texts in Simplified Chinese and English.

The page language is ``?lang=`` when given, else the tenant's locale (caller
page) or the browser's Accept-Language (pages shown before log-in); after
log-in the agent desktop and portal switch to the user's or tenant's locale
in the browser, from the same messages embedded in the page.
"""

from __future__ import annotations

LANGUAGES = ("en", "zh-CN")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "caller_title": "Call us",
        "caller_intro": "Talk to {tenant} from your browser. Allow the microphone when asked.",
        "your_name": "Your name",
        "call": "Call",
        "hang_up": "Hang up",
        "call_state": "Call",
        "agent_title": "Agent desktop",
        "portal_title": "Portal",
        "tenant": "Company (tenant)",
        "email": "E-mail",
        "password": "Password",
        "log_in": "Log in",
        "log_out": "Log out",
        "ready": "Ready",
        "not_ready": "Not ready",
        "answer": "Answer",
        "agent_state": "My state",
        "call_id": "Call",
        "caller": "Caller",
        "agents": "Agents",
        "queues": "Queues",
        "entry_points": "Entry points",
        "recent_calls": "Recent calls",
        "new_agent": "New agent",
        "new_queue": "New queue",
        "new_entry_point": "New web entry point",
        "display_name": "Name",
        "name": "Name",
        "queue": "Queue",
        "members": "Members",
        "create": "Create",
        "status": "Status",
        "state": "State",
        "started": "Started",
        "agent": "Agent",
        "wait_s": "Wait (s)",
        "talk_s": "Talk (s)",
        "end_reason": "End reason",
        "recordings": "Recordings",
        "caller_link": "Caller page",
        "login_failed": "Log-in failed",
        "not_found": "This call link does not exist.",
        "language": "语言 / Language",
        "invite_title": "Accept your invitation",
        "invite_intro": "Choose a password for your Kefu account.",
        "new_password": "New password (at least 10 characters)",
        "confirm_password": "Repeat the password",
        "set_password": "Set password and sign in",
        "passwords_differ": "The two passwords differ.",
        "invite_missing": "This invitation link is incomplete: open the link from your invitation again.",
        # agent states and not-ready reasons, in words (the codes stay in data attributes)
        "state_offline": "Offline",
        "state_available": "Available",
        "state_not_ready": "Not ready",
        "state_ringing": "Ringing",
        "state_on_call": "On a call",
        "reason_logged_in": "just logged in",
        "reason_break": "on a break",
        "reason_no_answer": "missed a call",
        # in-call controls
        "hold": "Hold",
        "resume": "Resume",
        "mute": "Mute",
        "unmute": "Unmute",
        "pause_recording": "Pause recording",
        "resume_recording": "Resume recording",
        "on_hold": "On hold: the caller hears music",
        "muted": "Muted: the caller does not hear you",
        "recording_paused": "Recording paused",
        "supervisor_monitor": "{name} (supervisor) is listening to this call.",
        "supervisor_whisper": "{name} (supervisor) is whispering to you; the caller cannot hear them.",
        "supervisor_barge": "{name} (supervisor) has barged in; the caller hears them too.",
        "a_supervisor": "A supervisor",
        "taken_over": "A supervisor took this call over. You are free for the next call.",
        "reconnecting": "Reconnecting the audio…",
        # supervisor page
        "supervisor_title": "Supervisor",
        "connected_calls": "Connected calls",
        "duration": "Duration",
        "listening": "You",
        "actions": "Actions",
        "monitor": "Monitor",
        "whisper": "Whisper",
        "barge": "Barge in",
        "take_over": "Take over",
        "leave": "Leave",
        "mode_monitor": "monitoring",
        "mode_whisper": "whispering",
        "mode_barge": "barged in",
        "mode_taken_over": "took over",
        "no_calls": "No connected calls right now.",
        "not_a_supervisor": "This account may not supervise calls: it needs the supervisor or tenant admin role.",
    },
    "zh-CN": {
        "caller_title": "联系我们",
        "caller_intro": "在浏览器中直接与{tenant}通话。请在提示时允许使用麦克风。",
        "your_name": "您的姓名",
        "call": "呼叫",
        "hang_up": "挂断",
        "call_state": "通话",
        "agent_title": "坐席工作台",
        "portal_title": "管理门户",
        "tenant": "公司(租户)",
        "email": "电子邮箱",
        "password": "密码",
        "log_in": "登录",
        "log_out": "签出",
        "ready": "示闲",
        "not_ready": "示忙",
        "answer": "接听",
        "agent_state": "我的状态",
        "call_id": "通话",
        "caller": "来电者",
        "agents": "坐席",
        "queues": "队列",
        "entry_points": "接入点",
        "recent_calls": "最近通话",
        "new_agent": "新建坐席",
        "new_queue": "新建队列",
        "new_entry_point": "新建网页接入点",
        "display_name": "姓名",
        "name": "名称",
        "queue": "队列",
        "members": "成员",
        "create": "创建",
        "status": "状态",
        "state": "状态",
        "started": "开始时间",
        "agent": "坐席",
        "wait_s": "等待(秒)",
        "talk_s": "通话(秒)",
        "end_reason": "结束原因",
        "recordings": "录音",
        "caller_link": "来电页面",
        "login_failed": "登录失败",
        "not_found": "此通话链接不存在。",
        "language": "语言 / Language",
        "invite_title": "接受邀请",
        "invite_intro": "请为您的客服账号设置密码。",
        "new_password": "新密码（至少 10 个字符）",
        "confirm_password": "再次输入密码",
        "set_password": "设置密码并登录",
        "passwords_differ": "两次输入的密码不一致。",
        "invite_missing": "邀请链接不完整，请重新打开邀请中的链接。",
        "state_offline": "离线",
        "state_available": "空闲",
        "state_not_ready": "示忙",
        "state_ringing": "振铃中",
        "state_on_call": "通话中",
        "reason_logged_in": "刚登录",
        "reason_break": "休息",
        "reason_no_answer": "未接来电",
        "hold": "保持",
        "resume": "恢复通话",
        "mute": "静音",
        "unmute": "取消静音",
        "pause_recording": "暂停录音",
        "resume_recording": "恢复录音",
        "on_hold": "通话保持中：来电者正在听等待音乐",
        "muted": "已静音：来电者听不到您",
        "recording_paused": "录音已暂停",
        "supervisor_monitor": "班长{name}正在监听此通话。",
        "supervisor_whisper": "班长{name}正在对您耳语，来电者听不到。",
        "supervisor_barge": "班长{name}已强插通话，来电者也能听到。",
        "a_supervisor": "一位班长",
        "taken_over": "班长已接管此通话，您现在可以接听下一个来电。",
        "reconnecting": "正在重新连接音频…",
        "supervisor_title": "班长监控台",
        "connected_calls": "进行中的通话",
        "duration": "时长",
        "listening": "我",
        "actions": "操作",
        "monitor": "监听",
        "whisper": "耳语",
        "barge": "强插",
        "take_over": "接管",
        "leave": "退出",
        "mode_monitor": "监听中",
        "mode_whisper": "耳语中",
        "mode_barge": "已强插",
        "mode_taken_over": "已接管",
        "no_calls": "当前没有进行中的通话。",
        "not_a_supervisor": "此账号不能监控通话：需要班长或租户管理员角色。",
    },
}


def normalize_language(value: str | None) -> str | None:
    """Map ``zh``, ``zh-CN``, ``zh_Hans`` … to ``zh-CN`` and ``en*`` to ``en``; None otherwise."""
    if not value:
        return None
    tag = value.strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    for part in (header or "").split(","):
        found = normalize_language(part.split(";")[0])
        if found:
            return found
    return None


def choose(query: str | None, *fallbacks: str | None) -> str:
    for candidate in (query, *fallbacks):
        found = normalize_language(candidate)
        if found:
            return found
    return "en"
