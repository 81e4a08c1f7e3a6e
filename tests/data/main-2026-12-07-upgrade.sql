SET lock_timeout = '5000ms';

BEGIN;

CREATE TABLE blockmon_alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT blockmon_alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE users (
    id SERIAL NOT NULL, 
    telegram_id BIGINT NOT NULL, 
    username VARCHAR(255), 
    first_name VARCHAR(255), 
    last_name VARCHAR(255), 
    language_code VARCHAR(10) DEFAULT 'en', 
    is_active BOOLEAN DEFAULT true, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now(), 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now(), 
    CONSTRAINT users_pkey PRIMARY KEY (id), 
    CONSTRAINT users_telegram_id_key UNIQUE (telegram_id)
);

CREATE TABLE alert_rules (
    id SERIAL NOT NULL, 
    user_id INTEGER, 
    name VARCHAR(255) NOT NULL, 
    description TEXT, 
    rule_type VARCHAR(50) NOT NULL, 
    conditions JSONB NOT NULL, 
    is_active BOOLEAN DEFAULT true, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now(), 
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now(), 
    CONSTRAINT alert_rules_pkey PRIMARY KEY (id), 
    CONSTRAINT alert_rules_user_id_fkey FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE alerts (
    id SERIAL NOT NULL, 
    rule_id INTEGER, 
    user_id INTEGER, 
    title VARCHAR(255) NOT NULL, 
    message TEXT NOT NULL, 
    severity VARCHAR(20) DEFAULT 'info', 
    status VARCHAR(20) DEFAULT 'pending', 
    metadata JSONB, 
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now(), 
    sent_at TIMESTAMP WITH TIME ZONE, 
    CONSTRAINT alerts_pkey PRIMARY KEY (id), 
    CONSTRAINT alerts_rule_id_fkey FOREIGN KEY(rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE, 
    CONSTRAINT alerts_user_id_fkey FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX idx_users_telegram_id ON users (telegram_id);

CREATE INDEX idx_alert_rules_user_id ON alert_rules (user_id);

CREATE INDEX idx_alerts_rule_id ON alerts (rule_id);

INSERT INTO blockmon_alembic_version (version_num) VALUES ('0001') RETURNING blockmon_alembic_version.version_num;

COMMIT;

